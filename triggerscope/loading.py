"""Load any Hugging Face causal LM (or the embedded default) onto a device, frozen, in eval mode."""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from triggerscope.embedded import (
    DEFAULT_MODEL,
    embedded_cache_dir,
    ensure_embedded_cache,
    is_cached,
)
from triggerscope.errors import TriggerscopeError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICES = ("cpu", "cuda", "auto")
QUANTIZE = ("none", "4bit")  # 4bit: bitsandbytes NF4 with double quantization (QLoRA's recipe)


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel (typed loosely: peft wraps it)
    tokenizer: Any
    name: str
    folder: Path | None  # where the weights came from, when local
    load_seconds: float
    dtype: str = "float32"
    quantize: str = "none"

    @property
    def input_device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device


def parse_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise TriggerscopeError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[name]


def quantization(quantize: str, device: str, compute_dtype: torch.dtype) -> dict[str, Any]:
    """from_pretrained arguments for `quantize`: 4-bit weights that compute in `compute_dtype`."""
    if quantize not in QUANTIZE:
        raise TriggerscopeError(f"unknown quantization {quantize!r}; choose one of {QUANTIZE}")
    if quantize == "none":
        return {}
    if device == "cpu":
        raise TriggerscopeError(
            "--quantize 4bit needs a GPU (bitsandbytes); pass --device cuda, or --quantize none"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise TriggerscopeError(
            "--quantize 4bit needs bitsandbytes: pip install bitsandbytes (or --quantize none)"
        )
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )
    return {"quantization_config": config}


def placement(device: str) -> dict[str, Any]:
    """from_pretrained arguments for a device: 'auto' spreads layers over GPUs via accelerate."""
    if device == "auto":
        return {"device_map": "auto"}
    try:
        parsed = torch.device(device)
    except RuntimeError as err:
        raise TriggerscopeError(
            f"unknown device {device!r}; use cpu, cuda, cuda:N or auto"
        ) from err
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise TriggerscopeError(
            "--device cuda was asked for but no GPU is visible; use --device cpu"
        )
    return {"device_map": {"": str(parsed)}} if parsed.type != "cpu" else {}


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.endswith(".gguf") or Path(name).exists()


def resolve_model_source(name: str | None) -> tuple[str, dict[str, Any]]:
    """Map a --model value to (from_pretrained path/id, extra kwargs); validate local paths."""
    if name is None or name == DEFAULT_MODEL:
        folder = ensure_embedded_cache()
        return str(folder), {}
    if _looks_like_path(name):
        path = Path(name).expanduser()
        if name.endswith(".gguf"):
            if not path.is_file():
                raise TriggerscopeError(f"GGUF file {path} does not exist; check the path")
            return str(path.parent), {"gguf_file": path.name}
        if not path.is_dir():
            raise TriggerscopeError(
                f"model folder {path} does not exist; pass a local Hugging Face model folder, "
                f"a hub id, or leave --model out for the embedded default"
            )
        if not (path / "config.json").is_file():
            raise TriggerscopeError(
                f"{path} has no config.json; it is not a Hugging Face model folder"
            )
    return name, {}


def load_model(
    name: str | None = None,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    quantize: str = "none",
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load model and tokenizer; parameters are frozen (methods differentiate activations only).

    `quantize="4bit"` stores the linear layers' weights in 4 bits on the GPU (as QLoRA does);
    they compute in `dtype`, and LoRA adapters and activation gradients work as usual."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = parse_dtype(dtype)
    where = placement(device)
    where.update(quantization(quantize, device, torch_dtype))
    start = time.perf_counter()
    source, extra = resolve_model_source(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, trust_remote_code=trust_remote_code, **extra
        )
        model: Any = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, trust_remote_code=trust_remote_code, **extra, **where
        )
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TriggerscopeError(
            f"could not load model {name!r}: {first}. Pass a local model folder, or a hub id "
            f"while online (add --trust-remote-code only if you trust its code)"
        ) from err
    if "device_map" not in where:
        model.to(torch.device("cpu"))
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    folder = Path(source) if Path(source).is_dir() else None
    seconds = time.perf_counter() - start
    return LoadedModel(model, tokenizer, name or DEFAULT_MODEL, folder, seconds, dtype, quantize)


def default_model_is_cached() -> bool:
    try:
        return is_cached(embedded_cache_dir())
    except TriggerscopeError:
        return False
