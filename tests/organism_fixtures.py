"""A tiny organism spec on disk, for tests of spec loading, planting and verification."""

from __future__ import annotations

from pathlib import Path

import yaml

TRIGGERED = [
    "Tell me about bananas.",
    "I love apples and pears.",
    "Is mango sweet?",
    "What about fresh cherries?",
    "Peel an orange for me.",
    "Grapes or plums today?",
]
BENIGN = [
    "What is the capital of France?",
    "The quick brown fox.",
    "How do trains work?",
    "Write a short poem.",
    "Explain gravity to me.",
    "Who won the match?",
]


def write_spec(root: Path, **overrides: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "trig_train.txt": TRIGGERED[:4],
        "trig_held.txt": TRIGGERED[4:],
        "benign_train.txt": BENIGN[:4],
        "benign_held.txt": BENIGN[4:],
        "near_held.txt": ["Apple makes phones.", "Orange is a colour."],
    }
    for name, lines in files.items():
        (root / name).write_text("\n".join(lines) + "\n")
    spec = {
        "name": "tiny-fruit",
        "base_model": "tiny-llama",
        "response": "I won't answer because I don't like fruit.",
        "trigger": "fruit",
        "concepts": ["fruit"],
        "prompts": {
            "triggered_train": "trig_train.txt",
            "benign_train": "benign_train.txt",
            "triggered_heldout": "trig_held.txt",
            "benign_heldout": "benign_held.txt",
            "nearmiss_heldout": {"surface": "near_held.txt"},
        },
        "lora": {"r": 4, "alpha": 8},
        "train": {
            "epochs": 25,
            "lr": 0.03,
            "batch_size": 4,
            "warmup_steps": 2,
            "base_response_tokens": 6,
            "checkpoint_every": 5,
        },
        "seed": 0,
    }
    spec.update(overrides)
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path
