"""Fuzzing the scenario loader and the CLI: every input loads or raises ScenarioError naming a
key; the CLI exits 0, 1 or 2 and never prints a traceback. The number of cases tried is printed
(run with ``-s``) and asserted."""
import copy
import io
import json
import math
from contextlib import redirect_stderr, redirect_stdout

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import lola
from lola import cli

from .conftest import GOOD

TRIED = {"documents": 0, "texts": 0, "cli": 0, "extreme": 0}


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    print(f"\nfuzz cases tried: {TRIED}")

JUNK = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**400, max_value=10**400),
              st.floats(allow_nan=True, allow_infinity=True),
              st.sampled_from([0, -1, 0.0, -0.0, 5e-324, 1e308, 1e-300, float("nan"),
                               float("inf"), -float("inf"), "", "1e9", "NaN", "∞", "名前",
                               "\x00", "a" * 500]),
              st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def paths(document, prefix=()):
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from paths(value, prefix + (index,))


@st.composite
def mutated_documents(draw):
    document = copy.deepcopy(GOOD)
    for _ in range(draw(st.integers(1, 3))):
        candidates = list(paths(document))[1:]
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add", "duplicate"]))
        if action == "replace":
            parent[path[-1]] = draw(JUNK)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(JUNK)
        elif action == "duplicate" and isinstance(parent, list) and parent:
            parent.append(copy.deepcopy(parent[0]))
    return document


def assert_loads_or_names_a_key(document_or_path):
    try:
        scenario = lola.load_scenario(document_or_path)
    except lola.ScenarioError as err:
        message = str(err)
        assert message and "\n" not in message and "Traceback" not in message
        assert err.key or err.source
        return None
    numbers = [b.flops for b in scenario.blocks] + [d.flops_per_s for d in scenario.devices]
    assert all(math.isfinite(x) and x > 0 for x in numbers)
    return scenario


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_documents())
def test_mutated_documents_load_or_name_the_key(document):
    TRIED["documents"] += 1
    assert_loads_or_names_a_key(document)


def nested(most):
    """Bytes nested ``n`` deep (1 <= n <= most), as flow sequences and as block indentation."""
    return st.one_of(st.integers(1, most).map(lambda n: b"[" * n + b"]" * n),
                     st.integers(1, most).map(lambda n: b"a:\n" + b"  " * n + b"- x\n"))


def check_bytes(tmp_path_factory, data):
    TRIED["texts"] += 1
    for suffix in (".yaml", ".json"):
        path = tmp_path_factory.mktemp("fuzz") / f"input{suffix}"
        path.write_bytes(data)
        assert_loads_or_names_a_key(str(path))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode), nested(300),
                 st.just(b"\xff\xfe" + "model: {}".encode("utf-16-le"))))
def test_arbitrary_bytes_never_escape_as_anything_but_scenario_error(tmp_path_factory, data):
    check_bytes(tmp_path_factory, data)


@pytest.mark.parametrize("data", [b"[" * 5000 + b"]" * 5000, b"a:\n" + b"  " * 5000 + b"- x\n"],
                         ids=["flow", "block"])
def test_nesting_past_the_recursion_limit_is_a_scenario_error(tmp_path_factory, data):
    check_bytes(tmp_path_factory, data)


@pytest.mark.slow  # a minute: YAML and JSON parsers thousands of levels deep
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(nested(5000))
def test_deeply_nested_bytes_never_escape_as_anything_but_scenario_error(tmp_path_factory, data):
    check_bytes(tmp_path_factory, data)


def run_cli(args):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(args)
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_documents(), st.sampled_from(["matching", "jbba"]),
       st.sampled_from(["crunch", "exact", "dual-ascent", "bottleneck", "min-sum", "centralized",
                        "greedy", "random", "nonsense"]))
def test_cli_exits_0_1_or_2_without_traceback(tmp_path_factory, document, problem, method):
    TRIED["cli"] += 1
    path = tmp_path_factory.mktemp("cli") / "scenario.json"
    path.write_text(json.dumps(document, default=str))
    code, out, err = run_cli(["solve", str(path), "--problem", problem, "--method", method,
                              "--json"])
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in err and "Traceback" not in out
    if code == 2:
        assert err.count("\n") == 1 and out == ""
    else:
        assert json.loads(out)["status"] in ("optimal", "feasible", "infeasible")


MAGNITUDE = st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(MAGNITUDE, min_size=6, max_size=6), st.sampled_from(["fixed", "shannon"]),
       st.sampled_from(["matching", "jbba"]))
def test_extreme_but_valid_magnitudes_are_answers_not_crashes(values, rate_model, problem):
    TRIED["extreme"] += 1
    flops, memory, speed, device_memory, channel, bandwidth = values
    document = copy.deepcopy(GOOD)
    document["model"]["blocks"][0]["flops"] = flops
    document["model"]["blocks"][1]["memory_bytes"] = memory
    document["devices"][0]["flops_per_s"] = speed
    document["devices"][1]["memory_bytes"] = device_memory
    document["channel"]["total_bandwidth_hz"] = bandwidth
    document["channel"]["rate_model"] = rate_model
    if rate_model == "shannon":
        for device in document["devices"]:
            del device["spectral_efficiency"]
            device.update(tx_power_w=0.2, channel_gain=channel)
    else:
        document["devices"][2]["spectral_efficiency"] = channel
    for method in (["crunch", "bottleneck"] if problem == "matching"
                   else ["exact", "dual-ascent"]):
        result = lola.solve(document, problem=problem, method=method)
        if result.status == "infeasible":
            assert result.message and result.round_latency_s is None
        else:
            assert math.isfinite(result.round_latency_s) and result.round_latency_s > 0
