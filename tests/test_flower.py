"""DEFT rounds in Flower (SPEC section 15), for real: the tiny RoBERTa, real LoRA steps, Flower's
messages and ClientApps, in one process (lola.flower.inprocess); Flower's Ray simulation engine
in one test marked slow."""
import json

import numpy as np
import pytest

pytest.importorskip("flwr", reason="DEFT runs need the flower extra (pip install -e '.[flower]')")
pytest.importorskip("torch", reason="DEFT runs need the profile extra")
pytest.importorskip("peft")
pytest.importorskip("transformers")

from lola.flower import cli as flower_cli  # noqa: E402
from lola.flower import centralized_run, deft_run  # noqa: E402
from lola.flower.data import DataError, synthetic_task  # noqa: E402
from lola.flower.host import measure_host  # noqa: E402
from lola.flower.prepare import prepare  # noqa: E402
from lola.flower.server import ClientFailure  # noqa: E402
from lola.flower.settings import RunSettings  # noqa: E402
from lola.flower.training import ModelSpec, get_model  # noqa: E402

SECTION_15_KEYS = {"scenario", "method", "rounds", "seed", "model", "per_round",
                   "host_flops_per_s", "compute_ratio_median"}
ROUND_KEYS = {"round", "status", "predicted_round_latency_s", "train_loss", "eval_loss",
              "clients"}
CLIENT_KEYS = {"device", "blocks", "measured_compute_s", "predicted_compute_s_host",
               "uploaded_bytes"}


def _scenario(tmp_path, devices, name="flower-test"):
    document = {"name": name, "model": {"profile": "roberta-base"},
                "devices": [{"name": device, "flops_per_s": 1e12 * (k + 1),
                             "memory_bytes": 8e9, "spectral_efficiency": 2.0 + k}
                            for k, device in enumerate(devices)],
                "channel": {"total_bandwidth_hz": 2e7, "rate_model": "fixed"}}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(document))
    return str(path)


@pytest.fixture(scope="module")
def host():
    """The tiny model profiled once on this host (the runs below share it)."""
    return measure_host(ModelSpec("tiny"), repetitions=2, warmup=1)


@pytest.fixture(scope="module")
def five(tmp_path_factory):
    return _scenario(tmp_path_factory.mktemp("five"), ["a", "b", "c", "d", "e"], "five")


@pytest.fixture(scope="module")
def audited(five, host):
    return deft_run(five, method="crunch", rounds=2, seed=0, audit=True, host=host)


@pytest.fixture
def slow_only(request):
    """Slow tests run when asked for (pytest -m slow), so that the default run stays short."""
    if "slow" not in (request.config.getoption("-m") or ""):
        pytest.skip("slow: run with pytest -m slow")


def _layer(name):
    return int(name.split(".")[1])


def test_the_json_has_section_15s_shape(audited):
    data = audited.to_dict()
    assert SECTION_15_KEYS <= set(data)
    assert (data["scenario"], data["method"], data["rounds"], data["model"]) == \
        ("five", "crunch", 2, "tiny")
    for row in data["per_round"]:
        assert ROUND_KEYS <= set(row) and row["status"] == "optimal"
        for client in row["clients"]:
            assert CLIENT_KEYS <= set(client)
            assert client["measured_compute_s"] > 0 and client["predicted_compute_s_host"] > 0
    ratios = [c["measured_compute_s"] / c["predicted_compute_s_host"]
              for row in data["per_round"] for c in row["clients"]]
    assert data["compute_ratio_median"] == pytest.approx(float(np.median(ratios)))
    spread = data["compute_ratio_spread"]
    assert spread["min"] <= spread["q1"] <= data["compute_ratio_median"] <= spread["q3"] \
        <= spread["max"]
    json.dumps(data)  # plain JSON throughout


def test_every_round_partitions_all_blocks(audited):
    blocks = {"layer.0", "layer.1", "layer.2", "layer.3"}
    for row in audited.to_dict()["per_round"]:
        assigned = [b for client in row["clients"] for b in client["blocks"]]
        assert sorted(assigned) == sorted(blocks)
        assert len({client["device"] for client in row["clients"]}) == len(row["clients"])


def test_back_propagation_stops_at_the_deepest_block(audited):
    model = get_model(prepare(RunSettings(method="crunch")).spec)
    for row in audited.to_dict()["per_round"]:
        for client in row["clients"]:
            deepest = min(_layer(b) for b in client["blocks"])
            # The outputs of the layers below the deepest block never get a gradient ...
            assert client["reached_layers"] == list(range(deepest, 4))
            # ... and the only parameters with one are the client's own adapters.
            assert sorted(client["grad_parameters"]) == sorted(model.keys_of(client["blocks"]))


def test_uploads_carry_exactly_the_blocks_adapters(audited, host):
    for row in audited.to_dict()["per_round"]:
        for client in row["clients"]:
            params = sum(block["params"] for block in host.scenario_blocks()
                         if block["name"] in client["blocks"])
            assert client["payload_bytes"] == 4 * params  # float32: q = 32 bits per entry
            # Flower's serialised arrays: the payload plus their .npy headers and key names.
            assert params * 4 < client["uploaded_bytes"] < params * 4 + 1024 * len(
                client["blocks"])


def test_adapters_outside_the_blocks_are_bit_for_bit_unchanged(five, host):
    """A Flower mod around the real ClientApp compares every adapter outside the client's
    blocks, after its step, with the one it received."""
    checked = []

    def inspect(message, context, call_next):
        reply = call_next(message, context)
        if message.metadata.message_type == "train":
            blocks = list(message.content.config_records["config"]["blocks"])
            received = message.content.array_records["adapters"]
            model = get_model(prepare(RunSettings(scenario=five, method="crunch")).spec)
            mine = set(model.keys_of(blocks))
            assert set(reply.content.array_records["adapters"]) == mine
            for key, array in received.items():
                if key not in mine:
                    after = model.adapters[key].detach().numpy()
                    assert after.tobytes() == array.numpy().tobytes(), key
                    checked.append(key)
        return reply

    deft_run(five, method="crunch", rounds=2, seed=0, host=host, client_mods=[inspect])
    assert len(checked) == 2 * 4 * 3 * 4  # rounds x clients x other blocks x 4 tensors each


def test_several_blocks_per_device(tmp_path, host):
    two = _scenario(tmp_path, ["small", "big"], "two")
    report = deft_run(two, method="greedy", rounds=2, seed=0, max_blocks=4, audit=True,
                      host=host).to_dict()
    sizes = set()
    for row in report["per_round"]:
        assert sorted(b for c in row["clients"] for b in c["blocks"]) == \
            ["layer.0", "layer.1", "layer.2", "layer.3"]
        for client in row["clients"]:
            sizes.add(len(client["blocks"]))
            deepest = min(_layer(b) for b in client["blocks"])
            assert client["reached_layers"] == list(range(deepest, 4))
            # C(A) = C_d + sum of the others' delta_n, over the host throughput (section 8)
            assert client["predicted_compute_s_host"] == pytest.approx(
                host.flops(client["blocks"]) / report["host_flops_per_s"])
    assert max(sizes) > 1
    assert set(report["compute_ratio_by_block_count"]) == {str(s) for s in sizes}


def test_same_seed_same_losses(five, host, audited):
    again = deft_run(five, method="crunch", rounds=2, seed=0, host=host).to_dict()
    first = audited.to_dict()
    for one, two in zip(first["per_round"], again["per_round"]):
        assert (one["train_loss"], one["eval_loss"]) == (two["train_loss"], two["eval_loss"])
        assert [c["blocks"] for c in one["clients"]] == [c["blocks"] for c in two["clients"]]
    other = deft_run(five, method="crunch", rounds=2, seed=1, host=host).to_dict()
    assert other["per_round"][0]["train_loss"] != first["per_round"][0]["train_loss"]


def test_a_few_rounds_learn_the_synthetic_task(five, host):
    report = deft_run(five, method="crunch", rounds=5, seed=0, host=host).to_dict()
    losses = [report["initial_eval_loss"]] + [row["eval_loss"] for row in report["per_round"]]
    assert losses[-1] < losses[0] - 0.02


def test_a_client_that_raises_fails_the_run_naming_the_device(five, host):
    def battery(message, context, call_next):
        if (message.metadata.message_type == "train"
                and context.node_config.get("device.name") == "c"):
            raise RuntimeError("battery died")
        return call_next(message, context)

    with pytest.raises(ClientFailure) as caught:
        deft_run(five, method="crunch", rounds=2, seed=0, host=host, client_mods=[battery])
    assert caught.value.device == "c"
    assert "device 'c' failed in round 1: RuntimeError: battery died" in str(caught.value)


def test_a_round_without_allocation_exits_1(tmp_path, capsys):
    document = json.loads(open(_scenario(tmp_path, ["a", "b", "c", "d"])).read())
    for device in document["devices"]:
        device["memory_bytes"] = 1.0  # no device can hold any block
    path = tmp_path / "starved.json"
    path.write_text(json.dumps(document))
    code = flower_cli.main([str(path), "--method", "crunch", "--rounds", "1", "--quiet",
                            "--profile-repetitions", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "round 1: crunch found no allocation" in err


def test_cli_json_and_figure(tmp_path, five, host, capsys):
    profile = tmp_path / "host.json"
    profile.write_text(json.dumps(host.document))
    figure = tmp_path / "deft.png"
    code = flower_cli.main([five, "--method", "crunch", "--rounds", "2", "--json", "--quiet",
                            "--host-profile", str(profile), "--figure", str(figure)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert SECTION_15_KEYS <= set(data) and data["host_profile"]["source"] == str(profile)
    assert figure.stat().st_size > 10_000


def test_centralized_reference_starts_where_deft_starts(five, host, audited):
    rows = centralized_run(RunSettings(scenario=five, method="crunch", rounds=2, seed=0))
    assert rows[0]["eval_loss"] == audited.to_dict()["initial_eval_loss"]
    assert [row["round"] for row in rows] == [0, 1, 2]


def _bad(tmp_path, lines):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize("lines, words", [
    (None, "no such file"),
    (['{"input_ids": [5, 6], "label": 0}', '{"input_ids": [5, 6], "label": 1', ''],
     "data.jsonl:2: not a JSON object"),
    (['{"input_ids": [5, 6], "label": 0}', '{"input_ids": [5, 1000], "label": 1}'],
     "data.jsonl:2: input_ids[1] = 1000 is outside the model's vocabulary [0, 1000)"),
    (['{"input_ids": [5, 6], "label": 1}', '', '{"input_ids": [7], "label": 1}'],
     "every example has label 1; a classification task needs at least two classes"),
    (['{"input_ids": [5, 6], "label": -1}'], "data.jsonl:1: label must be an integer >= 0"),
    (['{"input_ids": [5, 6]}'], "data.jsonl:1: missing key 'label'"),
])
def test_bad_data_is_one_line_naming_the_file_and_line_exit_2(tmp_path, capsys, lines, words):
    path = tmp_path / "data.jsonl" if lines is None else _bad(tmp_path, lines)
    code = flower_cli.main(["--data", str(path), "--method", "crunch", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(path) in err and words in err


def test_bad_data_raises_a_value_error_for_the_lola_command(tmp_path):
    path = _bad(tmp_path, ['{"input_ids": [5, 6], "label": 0}', '[1, 2]'])
    args = flower_cli.argparse.Namespace(**{**_defaults(), "data": str(path)})
    with pytest.raises(DataError, match=r"data.jsonl:2: not a JSON object, got list"):
        flower_cli.run(args)
    assert issubclass(DataError, ValueError)


def _defaults() -> dict:
    parser = flower_cli.argparse.ArgumentParser()
    flower_cli.add_arguments(parser)
    return vars(parser.parse_args([]))


def test_the_data_file_is_split_between_devices_and_held_out(tmp_path, five):
    lines = [json.dumps({"input_ids": [3 + i % 7, 4 + i % 11], "label": i % 3})
             for i in range(40)]
    path = _bad(tmp_path, lines)
    prepared = prepare(RunSettings(scenario=five, data=str(path), method="crunch"))
    assert len(prepared.held_out) == 8 and [len(s) for s in prepared.shards] == [7, 7, 6, 6, 6]
    assert prepared.spec.num_labels == 3
    assert prepared.held_out.input_ids.shape == (8, 32)  # padded to the sequence length


def test_synthetic_task_is_seeded():
    one = synthetic_task(20, vocab_size=1000, sequence_length=16, seed=3)
    two = synthetic_task(20, vocab_size=1000, sequence_length=16, seed=3)
    assert (one.input_ids == two.input_ids).all() and (one.labels == two.labels).all()
    assert set(one.labels.tolist()) == {0, 1}


@pytest.mark.slow
def test_flowers_simulation_engine_runs_the_same_apps(slow_only, five, host, monkeypatch):
    """Flower's own simulation engine (Ray) drives the same ServerApp and ClientApp."""
    pytest.importorskip("ray", reason="Flower's simulation engine needs Ray "
                        "(pip install 'flwr[simulation]>=1.41,<1.43')")
    from flwr.simulation import run_simulation

    from lola.flower.apps import make_client_app, make_server_app

    monkeypatch.setenv("FLWR_TELEMETRY_ENABLED", "0")
    settings = RunSettings(scenario=five, method="crunch", rounds=2, seed=0)
    reports = []
    run_simulation(server_app=make_server_app(settings, sink=reports.append, host=host),
                   client_app=make_client_app(settings), num_supernodes=5,
                   backend_config={"client_resources": {"num_cpus": 1}})
    inprocess = deft_run(five, method="crunch", rounds=2, seed=0, host=host).to_dict()
    data = reports[0].to_dict()
    assert [row["eval_loss"] for row in data["per_round"]] == pytest.approx(
        [row["eval_loss"] for row in inprocess["per_round"]], rel=1e-5)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port, process, timeout=60.0):
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"the SuperLink did not open port {port}")


@pytest.mark.slow
def test_a_deployment_with_superlink_and_supernodes(slow_only, tmp_path):
    """The apps as a Flower App on a real SuperLink and two SuperNodes whose node configs carry
    the devices' properties and data files (docs/flower.md, "Real devices")."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    binaries = Path(sys.executable).parent
    if not all((binaries / name).exists() for name in ("flower-superlink", "flower-supernode",
                                                         "flwr")):
        pytest.skip("Flower's command-line programs are not installed next to this Python")
    home, app = tmp_path / "flwr-home", tmp_path / "app"
    home.mkdir()
    app.mkdir()
    link = _free_port()
    env = {**os.environ, "FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0",
           "PATH": f"{binaries}{os.pathsep}{os.environ.get('PATH', '')}"}
    (home / "config.toml").write_text(f'[superlink]\ndefault = "test"\n\n[superlink.test]\n'
                                      f'address = "127.0.0.1:{link}"\ninsecure = true\n')
    scenario = _scenario(tmp_path, ["phone", "laptop"], "deployed")
    data = synthetic_task(64, vocab_size=1000, sequence_length=32, seed=0)
    files = []
    for k in range(2):
        path = tmp_path / f"device-{k}.jsonl"
        path.write_text("".join(json.dumps({"input_ids": data.input_ids[i].tolist(),
                                            "label": int(data.labels[i])}) + "\n"
                                for i in range(k, 64, 2)))
        files.append(path)
    report = tmp_path / "report.json"
    (app / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        '[project]\nname = "lola-deft-test"\nversion = "1.0.0"\ndescription = "test"\n'
        'license = "MIT"\ndependencies = []\n\n[tool.hatch.build.targets.wheel]\n'
        'packages = ["."]\n\n[tool.flwr.app]\npublisher = "lola"\n\n'
        '[tool.flwr.app.components]\nserverapp = "lola.flower.apps:server_app"\n'
        'clientapp = "lola.flower.apps:client_app"\n\n[tool.flwr.app.config]\n'
        f'scenario = "{scenario}"\nmethod = "greedy"\nmax-blocks = 4\nrounds = 2\n'
        f'model = "tiny"\nseed = 0\nprofile-repetitions = 1\nmin-nodes = 2\n'
        f'report = "{report}"\n')
    started = []

    def start(*command):
        started.append(subprocess.Popen(command, env=env, cwd=tmp_path,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True))

    try:
        start(str(binaries / "flower-superlink"), "--insecure", "--port", str(link))
        _wait_for_port(link, started[0])
        for (name, speed), path in zip((("phone", 1e12), ("laptop", 2e12)), files):
            start(str(binaries / "flower-supernode"), "--insecure", "--superlink",
                  f"127.0.0.1:{link}", "--port", str(_free_port()), "--node-config",
                  f'device.name="{name}" device.flops_per_s={speed} device.memory_bytes=8e9 '
                  f'device.spectral_efficiency={2.0 if name == "phone" else 3.0} '
                  f'data="{path}"')
        run = subprocess.run([str(binaries / "flwr"), "run", str(app), "test", "--stream"],
                             env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=400)
        assert report.exists(), run.stdout[-2000:] + run.stderr[-2000:]
    finally:
        for process in started:  # each started its own session: end it and its children
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in started:
            process.wait(timeout=30)
    data = json.loads(report.read_text())
    assert [row["round"] for row in data["per_round"]] == [1, 2]
    for row in data["per_round"]:
        assert sorted(b for c in row["clients"] for b in c["blocks"]) == \
            ["layer.0", "layer.1", "layer.2", "layer.3"]
        assert {c["device"] for c in row["clients"]} <= {"phone", "laptop"}
        assert all(c["examples"] == 16 for c in row["clients"])
