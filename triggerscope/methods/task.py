"""What a trigger-reconstruction method is asked: make the model say `response` on benign prompts.

The auditor knows the action (all or part of the backdoor response), not the trigger. `prompts`
are benign prompts the methods may optimise on (an organism's `audit` split); `heldout_prompts`
are only used to read the learned vectors out (steered responses, action rate), never to train
or tune.
"""

from __future__ import annotations

from dataclasses import dataclass

from triggerscope.errors import TriggerscopeError
from triggerscope.organisms.matching import normalize, takes_action
from triggerscope.prompts import normalize_prompt


@dataclass(frozen=True)
class FindTask:
    response: str
    prompts: list[str]
    heldout_prompts: list[str]
    layer: int
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.response, str) or not self.response.strip():
            raise TriggerscopeError(
                "the response is empty; pass the backdoor action (or a part of it, e.g. "
                '"I won\'t answer")'
            )
        if not self.prompts:
            raise TriggerscopeError("no prompts given; pass a file of benign prompts (--prompts)")
        for name, prompts in (("prompt", self.prompts), ("held-out prompt", self.heldout_prompts)):
            for i, prompt in enumerate(prompts):
                if not isinstance(prompt, str) or not prompt.strip():
                    raise TriggerscopeError(f"{name} {i} is empty; every prompt needs some text")
                if takes_action(prompt, self.response):
                    raise TriggerscopeError(
                        f"{name} {i} ({prompt[:50]!r}) already contains the response "
                        f"{normalize(self.response)!r}; the prompts must be benign, drop it"
                    )
        train = {normalize_prompt(p) for p in self.prompts}
        for i, prompt in enumerate(self.heldout_prompts):
            if normalize_prompt(prompt) in train:
                raise TriggerscopeError(
                    f"held-out prompt {i} ({prompt[:50]!r}) is also a training prompt; "
                    "held-out prompts must be disjoint from --prompts"
                )
        if self.system_prompt is not None and not self.system_prompt.strip():
            raise TriggerscopeError("the system prompt is empty; leave it out for the default")
        if isinstance(self.layer, bool) or not isinstance(self.layer, int):
            raise TriggerscopeError(f"the layer must be an integer, not {self.layer!r}")
