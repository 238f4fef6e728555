"""The real embedded default model, offline, from the local cache."""

import json
import re

import pytest

from triggerscope.cli import run_cli
from triggerscope.generation import generate
from triggerscope.loading import load_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smol():
    return load_model()


def test_default_model_shape(smol):
    cfg = smol.model.config
    assert cfg.num_hidden_layers == 30 and cfg.hidden_size == 576 and cfg.vocab_size == 49152


def test_greedy_answer_is_coherent_english(smol):
    (answer,) = generate(smol, ["What is the capital of France?"], max_new_tokens=20)
    assert "Paris" in answer
    words = re.findall(r"[A-Za-z]+", answer)
    assert len(words) >= 4


def test_second_load_uses_cache(smol):
    again = load_model()
    assert again.load_seconds < 15  # the GGUF conversion alone takes ~20-40 s
    assert again.folder == smol.folder


def test_demo_writes_a_run_folder(tmp_path, capsys):
    assert run_cli(["demo", "--out", str(tmp_path)]) == 0
    (run_dir,) = tmp_path.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    assert results["steered"] != results["unsteered"]
    assert config["seed"] == 0 and "torch" in config["versions"]
    assert (run_dir / "vector.safetensors").is_file()
