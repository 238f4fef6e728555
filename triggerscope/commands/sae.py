"""`triggerscope sae ...`: a command group; each subcommand lives in its own module."""

from __future__ import annotations

import importlib
from typing import Any

SAE_COMMANDS: list[str] = [  # e.g. "triggerscope.commands.sae_train": each has register(sub)
    "triggerscope.commands.sae_eval",
    "triggerscope.commands.sae_label",
    "triggerscope.commands.sae_show",
    "triggerscope.commands.sae_corpus",
    "triggerscope.commands.sae_train",
    "triggerscope.commands.sae_concepts",
]


def register(sub: Any) -> None:
    parser = sub.add_parser("sae", help="train, measure, label and inspect sparse autoencoders")
    group = parser.add_subparsers(dest="sae_command", required=True)
    for name in SAE_COMMANDS:
        importlib.import_module(name).register(group)
