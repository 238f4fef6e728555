import pytest
import torch

from triggerscope.errors import TriggerscopeError
from triggerscope.safetensors_io import load_vector, save_state_dict


def test_vector_round_trip(tmp_path):
    save_state_dict({"vector": torch.arange(4.0)}, tmp_path / "v.safetensors")
    assert torch.equal(load_vector(tmp_path / "v.safetensors", 4), torch.arange(4.0))


def test_wrong_size_and_corrupt_files(tmp_path):
    save_state_dict({"vector": torch.ones(3)}, tmp_path / "v.safetensors")
    with pytest.raises(TriggerscopeError, match="d_model is 4"):
        load_vector(tmp_path / "v.safetensors", 4)
    (tmp_path / "bad.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(TriggerscopeError, match="not a readable safetensors"):
        load_vector(tmp_path / "bad.safetensors", 4)
    with pytest.raises(TriggerscopeError, match="does not exist"):
        load_vector(tmp_path / "missing.safetensors", 4)
    save_state_dict({"a": torch.ones(4), "b": torch.ones(4)}, tmp_path / "two.safetensors")
    with pytest.raises(TriggerscopeError, match="several tensors"):
        load_vector(tmp_path / "two.safetensors", 4)
