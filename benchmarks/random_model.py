"""A randomly initialised model of a large model's shape, saved as a model folder: what a GPU
benchmark times when the real weights cannot be had (nothing is downloaded).

Run (on a GPU machine; the 8B shape takes 16 GB of disk in bf16):

    python benchmarks/random_model.py --shape llama-3.1-8b --tokenizer TOKENIZER_DIR \
        --out /tmp/llama-8b-random --device cuda

The tokenizer folder (any chat tokenizer, e.g. the embedded default's converted cache) sets the
vocabulary, so the embedding is that size, not the real model's; the layers are the real shape.
Speed and memory of the layers are what such a model measures; its answers are noise.
Checked so far only with `--shape tiny` on a CPU (the GPU lent to the session that wrote it
was withdrawn before the 8B run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHAPES: dict[str, dict[str, Any]] = {
    # Llama-3.1-8B's decoder (the seed's model), per its published config
    "llama-3.1-8b": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "rope_theta": 500000.0,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
    },
    "tiny": {  # for checking the script itself on a CPU
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "tie_word_embeddings": True,
    },
}


def main() -> None:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), required=True)
    parser.add_argument("--tokenizer", required=True, help="a folder with a chat tokenizer")
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **SHAPES[args.shape],
    )
    torch.manual_seed(args.seed)
    dtype = getattr(torch, args.dtype)
    with torch.device(args.device):
        model = LlamaForCausalLM(config).to(dtype)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.shape}: {params / 1e9:.2f}B parameters ({args.dtype}) -> {args.out}")


if __name__ == "__main__":
    main()
