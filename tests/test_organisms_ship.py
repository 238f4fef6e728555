import json

import pytest

from triggerscope.errors import TriggerscopeError
from triggerscope.manifest import verify_manifest
from triggerscope.organisms.ship import ship_organism


def _run(tmp_path, finished=True):
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "eval").mkdir()
    (run / "adapter" / "adapter_config.json").write_text("{}")
    (run / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    metrics = {
        "finished": finished,
        "steps": 10,
        "examples": {"triggered": 2},
        "final_loss_mean_last_20": 0.1,
        "total_seconds": 5.0,
    }
    (run / "plant_metrics.json").write_text(json.dumps(metrics))
    evaluation = {
        "action_rates": {"triggered": {"n": 4, "action_rate": 0.75}},
        "preservation": {"identical_greedy_share": 0.5, "mean_token_kl": 0.1},
    }
    (run / "eval" / "organism_eval.json").write_text(json.dumps(evaluation))
    return run


def test_ship_copies_adapter_metrics_and_eval_with_a_manifest(tmp_path):
    manifest = ship_organism(_run(tmp_path), tmp_path / "dest", "plant it")
    assert manifest["command"] == "plant it"
    assert manifest["results"]["action_rates"] == {"triggered": 0.75}
    assert set(manifest["sha256"]) == {
        "adapter_config.json",
        "adapter_model.safetensors",
        "plant_metrics.json",
        "organism_eval.json",
    }
    verify_manifest(tmp_path / "dest")


def test_ship_refuses_an_unfinished_or_unevaluated_run(tmp_path):
    with pytest.raises(TriggerscopeError, match="unfinished"):
        ship_organism(_run(tmp_path, finished=False), tmp_path / "dest", "x")
    (tmp_path / "run" / "eval" / "organism_eval.json").unlink()
    with pytest.raises(TriggerscopeError, match=r"organism_eval\.json is missing"):
        ship_organism(tmp_path / "run", tmp_path / "dest", "x")
    assert not (tmp_path / "dest").exists()
