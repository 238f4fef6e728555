"""Arguments shared by commands that load a model."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from triggerscope.loading import LoadedModel


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=None,
        help="local HF folder, .gguf file or hub id (default: embedded SmolLM2-135M-Instruct)",
    )
    group.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (multi-GPU)")
    group.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    group.add_argument(
        "--quantize",
        default="none",
        choices=["none", "4bit"],
        help="4bit: bitsandbytes NF4 weights on a GPU (QLoRA); computes in --dtype",
    )
    group.add_argument(
        "--trust-remote-code", action="store_true", help="run the model repo's own code"
    )


def load_from_args(args: argparse.Namespace) -> LoadedModel:
    from triggerscope.loading import load_model

    return load_model(
        args.model,
        device=args.device,
        dtype=args.dtype,
        quantize=args.quantize,
        trust_remote_code=args.trust_remote_code,
    )
