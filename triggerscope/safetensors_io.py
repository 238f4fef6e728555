"""Safe tensor files: safetensors only, with errors a user can act on."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from triggerscope.atomic import atomic_path
from triggerscope.errors import TriggerscopeError


def save_state_dict(
    tensors: dict[str, torch.Tensor],
    path: str | os.PathLike[str],
    metadata: dict[str, str] | None = None,
) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata)


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    file = Path(path)
    if not file.is_file():
        raise TriggerscopeError(f"{file} does not exist; pass the path of a .safetensors file")
    try:
        return load_file(file)
    except (SafetensorError, OSError, ValueError) as err:
        raise TriggerscopeError(f"{file} is not a readable safetensors file ({err})") from err


def load_vector(path: str | os.PathLike[str], d_model: int) -> torch.Tensor:
    """Load one steering vector: the tensor named `vector`, or the file's only tensor."""
    tensors = load_state_dict(path)
    if "vector" in tensors:
        vector = tensors["vector"]
    elif len(tensors) == 1:
        vector = next(iter(tensors.values()))
    else:
        names = ", ".join(sorted(tensors))
        raise TriggerscopeError(f"{path} holds several tensors ({names}); name one 'vector'")
    vector = vector.squeeze()
    if vector.shape != (d_model,):
        raise TriggerscopeError(
            f"steering vector in {path} has shape {tuple(vector.shape)} but the model's d_model "
            f"is {d_model}; use a vector trained for this model"
        )
    return vector.float()
