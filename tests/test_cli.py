import pytest
import torch

from triggerscope.cli import run_cli
from triggerscope.safetensors_io import save_state_dict


def assert_one_error_line(err: str, message: str) -> None:
    """One 'triggerscope: error:' line with the message; no traceback (progress bars aside)."""
    errors = [line for line in err.splitlines() if line.startswith("triggerscope: error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in err


@pytest.fixture
def tiny_folder(tmp_path, tiny):
    folder = tmp_path / "tiny"
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    return folder


def test_info_on_a_local_model(tiny_folder, capsys):
    assert run_cli(["info", "--model", str(tiny_folder)]) == 0
    out = capsys.readouterr().out
    assert "layers        4" in out and "d_model       32" in out


def test_chat_with_and_without_steering(tiny_folder, tmp_path, capsys):
    assert (
        run_cli(["chat", "Hello there", "--model", str(tiny_folder), "--max-new-tokens", "5"]) == 0
    )
    plain = capsys.readouterr().out
    save_state_dict({"vector": 100 * torch.randn(32)}, tmp_path / "v.safetensors")
    args = ["chat", "Hello there", "--model", str(tiny_folder), "--max-new-tokens", "5"]
    steer = ["--steer", str(tmp_path / "v.safetensors"), "--layer", "-2", "--scale", "3"]
    assert run_cli(args + steer + ["--steer-new-tokens", "all"]) == 0
    steered = capsys.readouterr().out
    assert plain != steered


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--steer", "V", "--layer", "9"], "out of range"),
        (["--steer", "WRONG", "--layer", "1"], "d_model is 32"),
        (["--steer", "V"], "needs --layer"),
        (["--layer", "1"], "need --steer"),
    ],
)
def test_chat_bad_input_exits_2(tiny_folder, tmp_path, capsys, extra, message):
    save_state_dict({"vector": torch.ones(32)}, tmp_path / "v.safetensors")
    save_state_dict({"vector": torch.ones(31)}, tmp_path / "w.safetensors")
    paths = {"V": str(tmp_path / "v.safetensors"), "WRONG": str(tmp_path / "w.safetensors")}
    extra = [paths.get(a, a) for a in extra]
    code = run_cli(["chat", "hi", "--model", str(tiny_folder), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert_one_error_line(err, message)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["chat", "   "], "prompt is empty"),
        (["info", "--model", "/no/such/model"], "does not exist"),
        (["info", "--model", "/no/such/model.gguf"], "GGUF file"),
        (["info", "--device", "tpu9"], "unknown device"),
    ],
)
def test_bad_input_exits_2(argv, message, capsys):
    assert run_cli(argv) == 2
    assert_one_error_line(capsys.readouterr().err, message)
