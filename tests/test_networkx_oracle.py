"""networkx as an independent oracle for P1 (one block per device, fixed bandwidths).

P1's optimum is a bottleneck matching: the least threshold T such that the pairs with latency
<= T hold a matching that covers every block. The oracle computes it with nothing of LoLa's
code: the pair latencies come from the reference model (``tests/reference_model.py``, written
from the specification alone), the candidate thresholds are those latencies sorted, and each
threshold is tested by networkx's Hopcroft-Karp maximum matching. ``crunch`` and
``bottleneck`` (run through ``lola.solve``) must report the same round latency to 1e-9 relative,
call an instance infeasible exactly when no threshold admits a full matching, and return an
assignment that is a matching of the graph at their own threshold.

Several blocks per device is not checked here as a flow: a device's set latency
C(A) / f_k + S(A) / r_k depends on how many blocks it takes and on the deepest of them
together, so no fixed per-device capacity makes a max-flow exact; the reference enumerator
covers that case (``tests/test_several_blocks.py``).
"""
from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from networkx.algorithms import bipartite

import lola

from .reference_model import parse, random_doc, reference_p1

REL_TOL = 1e-9
METHODS = ("crunch", "bottleneck")
SMALL_SEEDS = range(300)   # N <= 5, K <= 4: also checked against the reference's subset DP
LARGE_SEEDS = range(120)   # N up to 16, K up to 24


def pair_latencies(doc) -> dict:
    """{(block index, device index): P1 latency} for every allowed pair (SPEC 2-3, 10): the
    reference's compute time plus bits over the device's P1 rate, where memory fits and the
    energy stays within the device's budget."""
    ref = parse(doc, max_blocks=1, modes=("local",))
    latencies = {}
    for option in ref.options:
        (block,) = option.blocks
        rate = ref.rate(option.device, float(ref.fixed_bandwidth[option.device]))
        if not rate > 0:
            continue
        upload_s = option.bits / rate
        if not ref.energy_ok(option, upload_s):
            continue
        latency = option.fixed_s + upload_s
        if math.isfinite(latency):
            latencies[block, option.device] = latency
    return latencies


def threshold_graph(n_blocks, n_devices, latencies, threshold) -> nx.Graph:
    """Blocks ("block", n) and devices ("device", k), an edge per pair with latency <= T."""
    graph = nx.Graph()
    graph.add_nodes_from((("block", n) for n in range(n_blocks)), bipartite=0)
    graph.add_nodes_from((("device", k) for k in range(n_devices)), bipartite=1)
    graph.add_edges_from((("block", n), ("device", k))
                         for (n, k), latency in latencies.items() if latency <= threshold)
    return graph


def covers_every_block(n_blocks, n_devices, latencies, threshold) -> bool:
    graph = threshold_graph(n_blocks, n_devices, latencies, threshold)
    blocks = [("block", n) for n in range(n_blocks)]
    matching = bipartite.hopcroft_karp_matching(graph, top_nodes=blocks)
    return all(block in matching for block in blocks)


def networkx_p1(doc) -> float:
    """The least candidate latency whose threshold graph matches every block (inf if none):
    a binary search over the sorted distinct pair latencies, Hopcroft-Karp at each probe."""
    n_blocks, n_devices = len(doc["model"]["blocks"]), len(doc["devices"])
    latencies = pair_latencies(doc)
    candidates = sorted(set(latencies.values()))
    if not candidates or not covers_every_block(n_blocks, n_devices, latencies, candidates[-1]):
        return math.inf
    low, high = 0, len(candidates) - 1  # candidates[high] always covers
    while low < high:
        middle = (low + high) // 2
        if covers_every_block(n_blocks, n_devices, latencies, candidates[middle]):
            high = middle
        else:
            low = middle + 1
    return candidates[high]


def draw(seed: int, *, large: bool) -> dict:
    rng = np.random.default_rng([seed, 7 if large else 3])
    sizes = {}
    if large:
        n_blocks = int(rng.integers(1, 17))
        sizes = {"n_blocks": n_blocks,
                 "n_devices": int(rng.integers(max(1, n_blocks - 2), n_blocks + 9))}
    return random_doc(rng, caps=False, extras="absent", split=False, **sizes)


def check_against_networkx(doc):
    optimum = networkx_p1(doc)
    latencies = pair_latencies(doc)
    n_blocks, n_devices = len(doc["model"]["blocks"]), len(doc["devices"])
    block_index = {block["name"]: n for n, block in enumerate(doc["model"]["blocks"])}
    device_index = {device["name"]: k for k, device in enumerate(doc["devices"])}
    for method in METHODS:
        result = lola.solve(doc, problem="matching", method=method)
        if not math.isfinite(optimum):
            assert result.status == "infeasible", (method, result.status, result.round_latency_s)
            assert result.round_latency_s is None and result.assignment == []
            continue
        assert result.status == "optimal", (method, result.status, result.message)
        assert math.isclose(result.round_latency_s, optimum, rel_tol=REL_TOL), \
            (method, result.round_latency_s, optimum)
        # the assignment is a matching of the threshold graph at the reported latency
        graph = threshold_graph(n_blocks, n_devices, latencies,
                                result.round_latency_s * (1 + REL_TOL))
        edges = {(("block", block_index[pair["block"]]), ("device", device_index[pair["device"]]))
                 for pair in result.assignment}
        assert len(edges) == n_blocks, (method, result.assignment)
        assert nx.is_matching(graph, edges), (method, result.assignment)
    return optimum


@pytest.mark.parametrize("seed", SMALL_SEEDS)
def test_small_instances_agree_with_networkx_and_the_reference(seed):
    doc = draw(seed, large=False)
    optimum = check_against_networkx(doc)
    expected = reference_p1(doc)
    if math.isfinite(expected):
        assert math.isclose(optimum, expected, rel_tol=REL_TOL), (optimum, expected)
    else:
        assert not math.isfinite(optimum)


@pytest.mark.parametrize("seed", LARGE_SEEDS)
def test_larger_instances_agree_with_networkx(seed):
    check_against_networkx(draw(seed, large=True))


def test_the_draws_cover_feasible_infeasible_ties_and_energy():
    """The seeds above are not all of one kind: both outcomes, coinciding latencies (the
    threshold search's hard case) and energy budgets all occur."""
    docs = ([draw(seed, large=False) for seed in SMALL_SEEDS]
            + [draw(seed, large=True) for seed in LARGE_SEEDS])
    optima = [networkx_p1(doc) for doc in docs]
    feasible = sum(math.isfinite(value) for value in optima)
    assert 0.1 * len(docs) < feasible < 0.95 * len(docs), feasible
    tied = sum(len(set(pair_latencies(doc).values())) < len(pair_latencies(doc)) for doc in docs)
    assert tied > 20, tied
    budgeted = sum(any("energy_budget_j" in device for device in doc["devices"]) for doc in docs)
    assert budgeted > 50, budgeted


def test_to_networkx_is_a_matching_that_networkx_accepts():
    """``Result.to_networkx`` on an oracle instance: bipartite, one edge per block, every block
    of degree 1, each device of degree <= 1 (one block per device), and its largest device
    latency over the edges is the round latency."""
    doc = next(doc for doc in (draw(seed, large=True) for seed in LARGE_SEEDS)
               if math.isfinite(networkx_p1(doc)) and len(doc["model"]["blocks"]) >= 6)
    result = lola.solve(doc, problem="matching", method="crunch")
    graph = result.to_networkx()
    blocks = {node for node, side in graph.nodes(data="bipartite") if side == 0}
    assert bipartite.is_bipartite_node_set(graph, blocks)
    assert len(blocks) == len(doc["model"]["blocks"]) == graph.number_of_edges()
    assert all(graph.degree[node] == 1 for node in blocks)
    assert all(graph.degree[node] <= 1 for node in graph if node not in blocks)
    assert len(bipartite.hopcroft_karp_matching(graph, top_nodes=blocks)) == 2 * len(blocks)
    depths = sorted(graph.nodes[node]["depth"] for node in blocks)
    assert depths == list(range(1, len(blocks) + 1))
    assert graph.nodes["block", doc["model"]["blocks"][0]["name"]]["depth"] == 1
    busiest = max(graph.nodes[device]["latency_s"] for _, device in graph.edges(blocks))
    assert graph.graph["round_latency_s"] == result.round_latency_s
    assert math.isclose(busiest, result.round_latency_s, rel_tol=1e-12)
    idle = [node for node in graph if node not in blocks and graph.degree[node] == 0]
    assert all(graph.nodes[node]["n_blocks"] == 0 and "mode" not in graph.nodes[node]
               for node in idle)
