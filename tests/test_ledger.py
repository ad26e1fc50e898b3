"""`lola ledger`: the bytes an allocation moves, recounted from the allocation itself."""
import json

import pytest

import lola
from lola.cli import main
from lola.generate import generate_scenario
from lola.studies.ledger import traffic_ledger


@pytest.mark.parametrize("problem, method", [("jbba", "exact"), ("jbba", "greedy"),
                                             ("matching", "crunch"), ("matching", "random")])
@pytest.mark.parametrize("seed", range(3))
def test_every_block_is_uploaded_once_and_every_trainer_gets_the_model(problem, method, seed):
    scenario = lola.load_scenario(generate_scenario(14 + 3 * seed, seed=seed))
    rounds = 1 + 7 * seed
    ledger = traffic_ledger(scenario, problem=problem, method=method, rounds=rounds, seed=seed)
    result = lola.solve(scenario, problem=problem, method=method, seed=seed)
    bits = {b.name: b.params * b.bits_per_param for b in scenario.blocks}
    model_bytes = sum(bits.values()) / 8
    trainers = {d.name: d.blocks for d in result.devices if d.blocks}
    assert set(ledger.per_round["devices"]) == set(trainers)
    for name, blocks in trainers.items():
        entry = ledger.per_round["devices"][name]
        assert entry["uplink_bytes"] == pytest.approx(sum(bits[b] for b in blocks) / 8)
        assert entry["downlink_bytes"] == pytest.approx(model_bytes)
        assert ledger.total["devices"][name]["uplink_bytes"] == pytest.approx(
            rounds * entry["uplink_bytes"])
    assert ledger.per_round["uplink_bytes"] == pytest.approx(model_bytes)  # each block once
    assert ledger.per_round["downlink_bytes"] == pytest.approx(len(trainers) * model_bytes)
    assert ledger.total["total_bytes"] == pytest.approx(rounds * ledger.per_round["total_bytes"])
    central = lola.solve(scenario, method="centralized")
    uploaders = sum(1 for d in central.devices if d.bandwidth_hz > 0)
    expected = rounds * uploaders * scenario.model.batch_bytes
    assert ledger.centralized_total["uplink_bytes"] == pytest.approx(expected)
    assert ledger.ratio_to_centralized == pytest.approx(ledger.total["total_bytes"] / expected)


def test_json_has_the_contract_keys_and_a_missing_batch_gives_nulls(tmp_path, capsys):
    assert main(["ledger", "--rounds", "3", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document) == {"per_round", "total", "centralized_total", "ratio_to_centralized"}
    raw = generate_scenario(14, seed=0)
    del raw["model"]["batch_bytes"]
    path = tmp_path / "nobatch.json"
    path.write_text(json.dumps(raw))
    assert main(["ledger", str(path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["centralized_total"] is None and document["ratio_to_centralized"] is None


@pytest.mark.parametrize("args, words", [(["--rounds", "0"], "--rounds"),
                                         (["--method", "centralized"], "DEFT method"),
                                         (["--method", "nosuch"], "unknown method")])
def test_bad_input_is_one_line_exit_2(args, words, capsys):
    assert main(["ledger", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and words in err and len(err.strip().splitlines()) == 1
