"""The race's clock and its bookkeeping, without training: every strategy's round latency
against an independent recomputation from the scenario (scipy root finding, plain loops), the
time to target, the shards, the GLUE reader's errors. Cheap: numpy and scipy only."""
import math

import numpy as np
import pytest
from scipy.optimize import brentq

from lola.race.data import shard_indices
from lola.race.glue import GlueError, read_split, task_files
from lola.race.run import summarise
from lola.race.strategies import RaceCosts, StrategyError, plan_round
from lola.scenario import load_scenario

NOISE = 10 ** (-174 / 10) * 1e-3
NAMES = ["classifier"] + [f"layer.{l}" for l in range(5, -1, -1)]


def random_scenario(rng, *, devices=None, rate_model=None, tight=False):
    n = len(NAMES)
    flops = np.sort(rng.uniform(1e10, 6e10, n))
    memory = np.sort(rng.uniform(2e8, 6e8, n))
    blocks = [{"name": name, "flops": float(flops[i]), "memory_bytes": float(memory[i]),
               "params": int(rng.integers(500, 20000)),
               "extra_flops": float(rng.uniform(0, 5e8)),
               "extra_memory_bytes": float(rng.uniform(0, 5e6))}
              for i, name in enumerate(NAMES)]
    k = devices or int(rng.integers(7, 14))
    rate_model = rate_model or str(rng.choice(["fixed", "shannon"]))
    top = memory[-1] + 7 * 5e6
    devs = []
    for j in range(k):
        device = {"name": f"d{j}", "flops_per_s": float(rng.uniform(1e11, 3e12)),
                  "memory_bytes": float(rng.uniform(memory[0], top * 1.3) if tight
                                        else rng.uniform(top * 1.01, 4 * top))}
        if rate_model == "fixed":
            device["spectral_efficiency"] = float(rng.uniform(1, 8))
        else:
            device["tx_power_w"] = 0.2
            device["channel_gain"] = float(10 ** rng.uniform(-12, -9))
        devs.append(device)
    if tight:  # at least one device holds everything, and enough devices for deft
        devs[0]["memory_bytes"] = float(top * 1.5)
    return load_scenario({"name": "r", "model": {"blocks": blocks, "bits_per_param": 32,
                                                 "batch_bytes": 4160.0},
                          "devices": devs,
                          "channel": {"total_bandwidth_hz": float(rng.uniform(1e6, 2e7)),
                                      "rate_model": rate_model},
                          "server": {"flops_per_s": 1e13}})


def prefix(scenario, depth):
    """C, m and S of the top ``depth`` blocks, straight from section 8."""
    blocks = scenario.blocks[:depth]
    deepest = blocks[-1]
    flops = deepest.flops + sum(b.extra_flops for b in blocks[:-1])
    memory = deepest.memory_bytes + sum(b.extra_memory_bytes for b in blocks[:-1])
    bits = sum(32 * b.params for b in blocks)
    return flops, memory, bits


def rate(device, channel, b):
    if channel.rate_model == "fixed":
        return b * device.spectral_efficiency
    a = device.tx_power_w * device.channel_gain / channel.noise_psd_w_per_hz
    return b * math.log2(1 + a / b)


def need(device, channel, compute, bits, target):
    """Least bandwidth for compute + bits / r(b) <= target (inf when none)."""
    slack = target - compute
    if slack <= 0:
        return math.inf
    wanted = bits / slack
    if channel.rate_model == "fixed":
        return wanted / device.spectral_efficiency
    a = device.tx_power_w * device.channel_gain / channel.noise_psd_w_per_hz
    if wanted >= a / math.log(2) * (1 - 1e-12):
        return math.inf
    hi = 1.0
    while rate(device, channel, hi) < wanted:
        hi *= 2
    return brentq(lambda b: rate(device, channel, b) - wanted, 1e-30, hi, xtol=1e-300,
                  rtol=1e-15)


def best_split(scenario, pairs):
    """min over b of max_k compute_k + bits_k / r_k(b_k), sum b <= B: the T at which the least
    bandwidths add up to B (scipy's brentq, nothing shared with the solvers)."""
    channel = scenario.channel
    floor = max(c for _, c, _ in pairs)

    def excess(target):
        return sum(need(d, channel, c, s, target) for d, c, s in pairs) - \
            channel.total_bandwidth_hz

    hi = floor * 2 + 1e-9
    while not excess(hi) <= 0:
        hi = floor + 2 * (hi - floor)
    return brentq(lambda t: min(excess(t), 1e300), floor * (1 + 1e-15) + 1e-300, hi,
                  xtol=1e-300, rtol=1e-14)


@pytest.mark.parametrize("seed", range(60))
def test_fedavg_round_latency_is_the_best_split_of_every_block(seed):
    rng = np.random.default_rng(seed)
    scenario = random_scenario(rng, tight=seed % 3 == 0)
    steps = int(rng.integers(1, 4))
    m = None if seed % 2 else int(rng.integers(2, 6))
    costs = RaceCosts(scenario, local_steps=steps, clients_per_round=m)
    plan = plan_round("fedavg-lora", costs, np.random.default_rng(seed))
    flops, memory, bits = prefix(scenario, len(NAMES))
    eligible = [d for d in scenario.devices if d.memory_bytes >= memory]
    assert len(plan.assignment) == (len(eligible) if m is None else min(m, len(eligible)))
    chosen = [d for d in scenario.devices if d.name in plan.assignment]
    assert all(d in eligible for d in chosen)
    assert all(blocks == NAMES for blocks in plan.assignment.values())
    expected = best_split(scenario, [(d, steps * flops / d.flops_per_s, bits) for d in chosen])
    assert plan.round_latency_s == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("seed", range(60))
def test_depth_hetero_follows_its_rule_and_its_latency_is_the_best_split(seed):
    rng = np.random.default_rng(1000 + seed)
    scenario = random_scenario(rng, tight=True)
    steps = int(rng.integers(1, 3))
    costs = RaceCosts(scenario, local_steps=steps)
    plan = plan_round("depth-hetero", costs, np.random.default_rng(seed))
    n = len(NAMES)
    held = {}
    for d in scenario.devices:
        fits = [depth for depth in range(1, n + 1) if prefix(scenario, depth)[1] <= d.memory_bytes]
        held[d.name] = max(fits) if fits else 0
    chosen = [d for d in scenario.devices if held[d.name] >= 1]
    deepest = max(held[d.name] for d in chosen)
    deadline = min(steps * prefix(scenario, deepest)[0] / d.flops_per_s
                   for d in chosen if held[d.name] == deepest)
    pairs = []
    for d in chosen:
        depth = max([1] + [t for t in range(1, held[d.name] + 1)
                           if steps * prefix(scenario, t)[0] / d.flops_per_s <= deadline])
        assert plan.assignment[d.name] == NAMES[:depth], d.name
        flops, _, bits = prefix(scenario, depth)
        pairs.append((d, steps * flops / d.flops_per_s, bits))
    assert max(len(b) for b in plan.assignment.values()) == deepest
    assert plan.round_latency_s == pytest.approx(best_split(scenario, pairs), rel=1e-9)


@pytest.mark.parametrize("seed", range(30))
def test_centralized_round_latency_is_section_4s_times_the_local_steps(seed):
    rng = np.random.default_rng(2000 + seed)
    scenario = random_scenario(rng)
    steps = int(rng.integers(1, 4))
    plan = plan_round("centralized", RaceCosts(scenario, local_steps=steps), rng)
    n = len(NAMES)
    share = scenario.channel.total_bandwidth_hz / n
    rates = sorted(((rate(d, scenario.channel, share), d.name) for d in scenario.devices),
                   key=lambda pair: -pair[0])[:n]
    upload = max(8 * 4160.0 / r for r, _ in rates)
    server = n * scenario.blocks[-1].flops / 1e13
    assert plan.round_latency_s == pytest.approx(steps * (upload + server), rel=1e-12)
    assert sorted(plan.uploaders) == sorted(name for _, name in rates)
    assert plan.assignment == {}


@pytest.mark.parametrize("seed", range(20))
def test_deft_round_is_the_optimum_of_the_scaled_scenario_by_another_exact_method(seed):
    import lola

    rng = np.random.default_rng(3000 + seed)
    scenario = random_scenario(rng, devices=int(rng.integers(7, 9)))
    steps = int(rng.integers(1, 3))
    plan = plan_round("deft", RaceCosts(scenario, local_steps=steps), rng)
    blocks = [dict(name=b.name, flops=b.flops * steps, memory_bytes=b.memory_bytes,
                   params=b.params, extra_flops=b.extra_flops * steps,
                   extra_memory_bytes=b.extra_memory_bytes) for b in scenario.blocks]
    document = {"model": {"blocks": blocks}, "channel": {
        "total_bandwidth_hz": scenario.channel.total_bandwidth_hz,
        "rate_model": scenario.channel.rate_model},
        "devices": [{k: v for k, v in vars(d).items() if v is not None}
                    for d in scenario.devices]}
    other = lola.solve(document, problem="jbba", method="milp")
    assert plan.round_latency_s == pytest.approx(other.round_latency_s, rel=1e-6)
    assigned = sorted(b for blocks in plan.assignment.values() for b in blocks)
    assert assigned == sorted(NAMES)


def test_a_strategy_that_cannot_run_says_why():
    rng = np.random.default_rng(5)
    scenario = random_scenario(rng)
    small = load_scenario({**_document(scenario), "devices": [
        {"name": "x", "flops_per_s": 1e12, "memory_bytes": 1.0, "spectral_efficiency": 3}] * 1})
    with pytest.raises(StrategyError, match="fedavg-lora: no device's memory"):
        plan_round("fedavg-lora", RaceCosts(small), rng)
    with pytest.raises(StrategyError, match="depth-hetero: no device's memory"):
        plan_round("depth-hetero", RaceCosts(small), rng)
    with pytest.raises(StrategyError, match="unknown strategy"):
        plan_round("fedprox", RaceCosts(scenario), rng)


def _document(scenario):
    return {"model": {"blocks": [dict(name=b.name, flops=b.flops, memory_bytes=b.memory_bytes,
                                      params=b.params) for b in scenario.blocks]},
            "channel": {"total_bandwidth_hz": scenario.channel.total_bandwidth_hz,
                        "rate_model": scenario.channel.rate_model}}


def _rows(accuracies, latencies):
    time, rows = 0.0, []
    for number, (accuracy, latency) in enumerate(zip(accuracies, latencies), start=1):
        time += latency
        rows.append({"strategy": "s", "seed": 0, "round": number, "round_latency_s": latency,
                     "modeled_time_s": time, "dev_accuracy": accuracy})
    return rows


def test_time_to_target_is_the_first_round_at_or_above_it():
    rows = _rows([0.5, None, 0.8, 0.79, 0.9], [1.0, 2.0, 0.5, 4.0, 1.0])
    summary = summarise(rows, "s", 0, 0.8)
    assert summary["rounds_to_target"] == 3
    assert summary["time_to_target_s"] == pytest.approx(3.5)
    assert summary["final_dev_accuracy"] == 0.9 and summary["best_dev_accuracy"] == 0.9
    never = summarise(rows, "s", 0, 0.95)
    assert never["rounds_to_target"] is None and never["time_to_target_s"] is None
    assert summarise(rows, "s", 0, 0.5)["time_to_target_s"] == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(20))
def test_shards_partition_the_training_split(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, int(rng.integers(40, 400)))
    devices = int(rng.integers(2, 20))
    for options in ({}, {"alpha": float(rng.uniform(0.05, 5))},
                    {"size_skew": float(rng.uniform(0.1, 2))}):
        shards = shard_indices(labels, devices, seed=seed, **options)
        assert len(shards) == devices and all(len(s) >= 1 for s in shards)
        joined = np.sort(np.concatenate(shards))
        assert joined.tolist() == list(range(len(labels)))
        again = shard_indices(labels, devices, seed=seed, **options)
        assert all(np.array_equal(a, b) for a, b in zip(shards, again))
    equal = [len(s) for s in shard_indices(labels, devices, seed=seed)]
    assert max(equal) - min(equal) <= 1


def test_label_skew_concentrates_labels():
    labels = np.repeat([0, 1], 500)
    skewed = shard_indices(labels, 10, seed=0, alpha=0.05)
    iid = shard_indices(labels, 10, seed=0)

    def purity(shards):
        return np.mean([max(np.mean(labels[s]), 1 - np.mean(labels[s])) for s in shards])

    assert purity(skewed) > 0.9 > 0.7 > purity(iid)


def _glue(tmp_path, train, dev="sentence\tlabel\ngood\t1\n", test=None, folder="SST-2"):
    root = tmp_path / "glue"
    (root / folder).mkdir(parents=True)
    (root / folder / "train.tsv").write_text(train)
    (root / folder / "dev.tsv").write_text(dev)
    if test is not None:
        (root / folder / "test.tsv").write_text(test)
    return root


@pytest.mark.parametrize("text, where, message", [
    ("sentence\tlabel\nfine\t1\nbroken line\n", 3, "expected 2 tab-separated columns"),
    ("sentence\tlabel\nfine\t7\n", 2, "label '7' is not one of 0, 1"),
    ("sentence\tlabel\n\t1\n", 2, "empty sentence"),
    ("text\tlabel\nfine\t1\n", 1, "expected the header line"),
])
def test_a_malformed_line_is_named_by_file_and_line(tmp_path, text, where, message):
    root = _glue(tmp_path, text)
    with pytest.raises(GlueError) as caught:
        read_split(root, "sst2", "train")
    assert str(caught.value).startswith(f"{root / 'SST-2' / 'train.tsv'}:{where}: ")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_missing_folders_and_files_are_named(tmp_path):
    with pytest.raises(GlueError, match="no such folder"):
        task_files(tmp_path / "nope", "sst2")
    with pytest.raises(GlueError, match="no folder SST-2"):
        task_files(tmp_path, "sst2")
    root = _glue(tmp_path, "sentence\tlabel\nfine\t1\n")
    (root / "SST-2" / "dev.tsv").unlink()
    with pytest.raises(GlueError, match="dev.tsv: no such file"):
        task_files(root, "sst2")
    with pytest.raises(GlueError, match="unknown task"):
        task_files(root, "mrpc")


def test_cola_is_one_table_entry(tmp_path):
    root = _glue(tmp_path, "gj04\t1\t\tthe sailors rode the breeze .\n"
                 "gj04\t0\t*\tthe more we study verbs .\n", dev="gj04\t1\t\tok .\n",
                 folder="CoLA")
    split = read_split(root, "cola", "train")
    assert split.sentences == ["the sailors rode the breeze .", "the more we study verbs ."]
    assert split.labels == [1, 0]
    assert task_files(root, "cola")["test"] is None
