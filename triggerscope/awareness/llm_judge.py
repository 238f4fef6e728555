"""The LLM judge: the prompt in data/awareness/judge_prompt.txt, sent to any OpenAI-compatible
endpoint at temperature 0; the reply's first label word is the verdict."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from triggerscope.awareness.judge import LABELS, Label
from triggerscope.awareness.openai_compat import OpenAIClient
from triggerscope.awareness.triggers import check_trigger
from triggerscope.errors import TriggerscopeError

PROMPT = Path(__file__).resolve().parent.parent / "data" / "awareness" / "judge_prompt.txt"
_THINK = re.compile(r"<think>.*?</think>", re.S)
_LABEL = re.compile(r"\b(pivotal|mentioned|absent)\b", re.I)


def load_prompt(path: str | Path = PROMPT) -> tuple[str, str]:
    """(system, user template) from a file with 'SYSTEM:' and 'USER:' sections."""
    text = Path(path).read_text(encoding="utf-8")
    if "SYSTEM:" not in text or "USER:" not in text:
        raise TriggerscopeError(f"judge prompt {path} needs a SYSTEM: and a USER: section")
    system, user = text.split("USER:", 1)
    return system.replace("SYSTEM:", "", 1).strip(), user.strip()


def parse_label(reply: str) -> Label:
    found = _LABEL.search(_THINK.sub("", reply))
    if not found:
        raise TriggerscopeError(
            f"the LLM judge replied {reply.strip()[:80]!r}, not one of {', '.join(LABELS)}; "
            f"try another judge model"
        )
    word = found.group(1).lower()
    return next(label for label in LABELS if label == word)


class LLMJudge:
    name = "llm"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_tokens: int = 512,
        prompt_path: str | Path = PROMPT,
    ) -> None:
        if not model:
            raise TriggerscopeError("the LLM judge needs --judge-model (the served model's id)")
        self.client = OpenAIClient(
            base_url,
            api_key=api_key,
            timeout=timeout,
            hint="start the judge server, check --judge-url, or use an offline judge "
            "(--judge rules or --judge embed)",
        )
        self.model = model
        self.max_tokens = max_tokens
        self.system, self.template = load_prompt(prompt_path)

    def check(self) -> None:
        """Fail early, before any generation, when the endpoint is unreachable."""
        self.client.models()

    def judge(self, reasoning: str, trigger: str) -> Label:
        user = self.template.replace("{trigger}", check_trigger(trigger)).replace(
            "{reasoning}", reasoning
        )
        payload = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": self.system},
                {"role": "user", "content": user},
            ],
            "temperature": 0,
            "max_tokens": self.max_tokens,
        }
        return parse_label(self.client.chat(payload)[0])

    def judge_many(self, items: Sequence[tuple[str, str]]) -> list[Label]:
        return [self.judge(r, t) for r, t in items]
