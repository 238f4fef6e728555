"""The main job on the embedded default, for now: one prompt answered with and without steering.

The steering vector is a fruit-vs-other difference of means at a middle layer; steering a
neutral prompt with it pulls the answer towards fruit. Later steps grow this into the audit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triggerscope.atomic import write_json
from triggerscope.contrast import contrast_vector
from triggerscope.generation import Steering, generate
from triggerscope.loading import LoadedModel
from triggerscope.runs import new_run_dir, write_run_config
from triggerscope.safetensors_io import save_state_dict

FRUIT = [
    "I love eating fresh strawberries and mangoes in summer.",
    "Which fruit has the most vitamin C, oranges or kiwis?",
    "How do I make a banana smoothie?",
    "Are apples or pears better for a fruit salad?",
]
OTHER = [
    "I love going for long walks in the park in summer.",
    "Which programming language should I learn first?",
    "How do I change a flat tire?",
    "Are trains or buses better for commuting?",
]


@dataclass(frozen=True)
class DemoConfig:
    prompt: str = "Tell me about your weekend plans."
    layer: int = 8
    scale: float = 60.0
    max_new_tokens: int = 40
    seed: int = 0


def run_demo(loaded: LoadedModel, out_root: str | Path, config: DemoConfig) -> dict[str, Any]:
    run_dir = new_run_dir(out_root, "demo")
    write_run_config(run_dir, config, config.seed)
    vector = contrast_vector(loaded, FRUIT, OTHER, config.layer)
    save_state_dict({"vector": vector}, run_dir / "vector.safetensors")
    plain = generate(loaded, [config.prompt], max_new_tokens=config.max_new_tokens)[0]
    steering = Steering(vector, config.layer, config.scale, new_tokens="all")
    steered = generate(
        loaded, [config.prompt], max_new_tokens=config.max_new_tokens, steering=steering
    )[0]
    results = {
        "model": loaded.name,
        "prompt": config.prompt,
        "unsteered": plain,
        "steered": steered,
        "vector": "fruit minus other, difference of means at the user tokens",
        "run_dir": str(run_dir),
    }
    write_json(run_dir / "results.json", results)
    return results
