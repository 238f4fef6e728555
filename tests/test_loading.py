import importlib.util

import pytest
import torch

from triggerscope.errors import TriggerscopeError
from triggerscope.loading import load_model, parse_dtype, placement, quantization


def test_local_folder_loads_with_dtype(tmp_path, tiny):
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path), dtype="bfloat16")
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert loaded.folder == tmp_path


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("/no/such/folder", "does not exist"),
        ("./missing.gguf", "GGUF file"),
    ],
)
def test_bad_model_paths(name, message):
    with pytest.raises(TriggerscopeError, match=message):
        load_model(name)


def test_folder_without_config(tmp_path):
    with pytest.raises(TriggerscopeError, match=r"no config\.json"):
        load_model(str(tmp_path))


def test_device_and_dtype_validation():
    assert placement("auto") == {"device_map": "auto"}
    assert placement("cpu") == {}
    with pytest.raises(TriggerscopeError, match="unknown device"):
        placement("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(TriggerscopeError, match="no GPU"):
            placement("cuda")
    with pytest.raises(TriggerscopeError, match="unknown dtype"):
        parse_dtype("int8")


def test_quantization_is_checked_before_loading(monkeypatch):
    assert quantization("none", "cpu", torch.float32) == {}
    with pytest.raises(TriggerscopeError, match="unknown quantization '8bit'"):
        quantization("8bit", "cuda", torch.bfloat16)
    with pytest.raises(TriggerscopeError, match="needs a GPU"):
        load_model("/no/such/folder", quantize="4bit")  # before the folder is even looked at
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "bitsandbytes" else real(name)
    )
    with pytest.raises(TriggerscopeError, match="pip install bitsandbytes"):
        quantization("4bit", "cuda", torch.bfloat16)
