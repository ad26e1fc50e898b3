"""The `lola` command: output formats, exit codes, and one-line errors without tracebacks."""
import json
import subprocess
import sys

import pytest

from lola.cli import main

LOLA = [sys.executable, "-m", "lola.cli"]
KEYS = {"scenario", "problem", "method", "status", "round_latency_s", "assignment", "devices",
        "lower_bound_s", "solve_time_s", "message"}


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_default_scenario_table(capsys):
    code, out, err = run(["solve", "--problem", "matching", "--method", "crunch"], capsys)
    assert code == 0 and err == ""
    assert "status optimal" in out and "layer.0" in out and "*" in out


def test_json_is_one_object_with_the_contract_keys(capsys, write_json, good_scenario):
    code, out, _ = run(["solve", write_json(good_scenario), "--problem", "matching",
                        "--method", "bottleneck", "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert set(result) == KEYS and result["status"] == "optimal"
    assert result["lower_bound_s"] == result["round_latency_s"]
    assert len(result["devices"]) == 3
    idle = [d for d in result["devices"] if not d["blocks"]]
    assert len(idle) == 1 and idle[0]["bandwidth_hz"] == 0


def test_infeasible_exits_1_and_still_prints_json(capsys, write_json, good_scenario):
    good_scenario["devices"] = good_scenario["devices"][:1]
    code, out, err = run(["solve", write_json(good_scenario), "--problem", "matching",
                          "--method", "crunch", "--json"], capsys)
    assert code == 1 and err == ""
    result = json.loads(out)
    assert result["status"] == "infeasible" and result["round_latency_s"] is None
    assert result["assignment"] == [] and "add 1 device" in result["message"]


def test_memory_infeasibility_message_names_the_block(capsys, write_json, good_scenario):
    for device in good_scenario["devices"]:
        device["memory_bytes"] = 1.05e9
    code, out, _ = run(["solve", write_json(good_scenario), "--problem", "matching", "--json"],
                       capsys)
    assert code == 1
    assert "layer.0" in json.loads(out)["message"]


@pytest.mark.parametrize("args, words", [
    (["solve", "--problem", "matching", "--method", "dual-magic"], "unknown method"),
    (["solve", "--problem", "matching", "--method", "random", "--seed", "x"],
     "--seed: must be a non-negative integer"),
    (["solve", "--problem", "sideways"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors_exit_2_with_one_line(capsys, args, words):
    code, out, err = run(args, capsys)
    assert code == 2 and out == ""
    assert words in err and err.count("\n") == 1


def test_method_for_the_wrong_problem_lists_those_that_apply(capsys):
    code, _, err = run(["solve", "--problem", "jbba", "--method", "crunch"], capsys)
    assert code == 2 and "does not solve jbba" in err and "random" in err


def test_bad_scenario_exits_2_naming_file_and_key(capsys, write_json, good_scenario):
    good_scenario["devices"][1]["memory_bytes"] = -5
    path = write_json(good_scenario)
    code, out, err = run(["solve", path, "--json"], capsys)
    assert code == 2 and out == ""
    assert str(path) in err and "devices[1].memory_bytes" in err and err.count("\n") == 1


def test_centralized_without_server_names_the_key(capsys, write_json, good_scenario):
    del good_scenario["server"]
    code, _, err = run(["solve", write_json(good_scenario), "--problem", "matching",
                        "--method", "centralized"], capsys)
    assert code == 2 and "server.flops_per_s" in err


def test_brute_refusal_is_a_clear_usage_error(capsys):
    code, _, err = run(["solve", "--problem", "matching", "--method", "brute"], capsys)
    assert code == 2 and "limit" in err and "crunch" in err


def test_real_process_never_prints_a_traceback(tmp_path):
    cases = {"missing.yaml": None, "broken.yaml": "model: [", "bad.json": '{"model": 3}',
             "binary.yaml": b"\xff\xfe\x00junk"}
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
        done = subprocess.run(LOLA + ["solve", str(path), "--json"], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2, (name, done.stderr)
        assert "Traceback" not in done.stderr and done.stdout == ""
        assert str(path) in done.stderr and done.stderr.count("\n") == 1


def test_methods_listing(capsys):
    code, out, _ = run(["methods", "--json"], capsys)
    names = [m["name"] for m in json.loads(out)]
    assert code == 0 and names[:4] == ["crunch", "bottleneck", "exact", "dual-ascent"] and "min-sum" in names


def test_compare_table_and_json(capsys, write_json, good_scenario):
    path = write_json(good_scenario)
    code, out, _ = run(["compare", path, "--problem", "jbba", "--json"], capsys)
    assert code == 0
    document = json.loads(out)
    by_method = {r["method"]: r for r in document["results"]}
    assert {"dual-ascent", "exact", "milp", "brute", "random", "centralized"} <= set(by_method)
    exact = by_method["exact"]["round_latency_s"]
    assert document["best_lower_bound_s"] <= exact * (1 + 1e-9)
    assert by_method["exact"]["reduction_vs"]["random"] == pytest.approx(
        1 - exact / by_method["random"]["round_latency_s"])
    assert "random" not in by_method["random"]["reduction_vs"]
    code, out, _ = run(["compare", path, "--problem", "matching"], capsys)
    assert code == 0 and "crunch" in out and "vs min-sum" in out


def test_compare_lists_skipped_methods(capsys):
    code, out, _ = run(["compare", "--problem", "matching"], capsys)
    assert code == 0 and "skipped brute" in out


def test_shannon_rate_that_cannot_carry_a_gradient_is_infeasible_with_that_reason(
        capsys, write_json, good_scenario):
    good_scenario["channel"]["rate_model"] = "shannon"
    for device in good_scenario["devices"]:
        del device["spectral_efficiency"]
        device.update(tx_power_w=0.2, channel_gain=5e-324)  # the rate underflows to nothing
    code, out, _ = run(["solve", write_json(good_scenario), "--problem", "jbba", "--json"],
                       capsys)
    result = json.loads(out)
    assert code == 1 and result["status"] == "infeasible"
    assert "rate ceiling" in result["message"]
