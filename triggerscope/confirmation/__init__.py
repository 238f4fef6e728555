"""Causal confirmation of trigger hypotheses (issue 8): does inserting a candidate concept into
benign prompts make the backdoored model take the action, more than matched controls do?

- `hypotheses`: candidate concepts from a method's result and the latent dictionary;
- `carriers`: test prompts that carry a hypothesis, and matched controls;
- `stats`: Wilson intervals of rates, Newcombe's interval of their difference;
- `search`: `confirm()` (ranking by effect, and the automatic conjunctive search);
- `run`: the same on a `triggerscope find` run folder, saved to RUN_DIR/confirmation/;
- `report`: the section the audit report shows.
"""

from triggerscope.confirmation.hypotheses import Hypothesis, hypotheses_from_result
from triggerscope.confirmation.search import (
    ConfirmationResult,
    ConfirmConfig,
    Evidence,
    Step,
    confirm,
    method_finder,
    model_responder,
)

__all__ = [
    "ConfirmConfig",
    "ConfirmationResult",
    "Evidence",
    "Hypothesis",
    "Step",
    "confirm",
    "hypotheses_from_result",
    "method_finder",
    "model_responder",
]
