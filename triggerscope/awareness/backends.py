"""Where samples come from: a local transformers model, or an OpenAI-compatible server (vLLM)
for real reasoning models on GPUs. The experiment only sees `Generator.complete`.

A *prefill* is the start of the assistant's turn, written for the model; the returned text is
the continuation after it. vLLM continues a prefilled assistant message when asked with
`continue_final_message: true, add_generation_prompt: false` (its chat-completions
extension); other servers may ignore those fields and start a fresh turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import torch

from triggerscope.awareness.openai_compat import OpenAIClient
from triggerscope.chat import build_chat_batch
from triggerscope.errors import TriggerscopeError
from triggerscope.loading import LoadedModel


class Generator(Protocol):
    name: str

    def complete(
        self,
        prompts: Sequence[str],
        prefills: Sequence[str],
        *,
        n: int,
        temperature: float,
        max_new_tokens: int,
        seed: int,
        reasoning: bool = False,
    ) -> list[list[str]]:
        """`n` continuations per (prompt, prefill); `reasoning` says whether the condition
        asks for a chain of thought (a served reasoning model may switch thinking on or off)."""
        ...


def _check(prompts: Sequence[str], prefills: Sequence[str], n: int) -> None:
    if len(prompts) != len(prefills):
        raise TriggerscopeError(f"{len(prompts)} prompts but {len(prefills)} prefills")
    if n < 1:
        raise TriggerscopeError(f"samples per prompt must be at least 1, not {n}")


class LocalGenerator:
    """transformers `generate` on a loaded model (adapter attached or not), in batches."""

    def __init__(
        self, loaded: LoadedModel, *, system_prompt: str | None = None, batch_size: int = 16
    ) -> None:
        self.loaded = loaded
        self.system_prompt = system_prompt
        self.batch_size = batch_size
        self.name = f"local:{loaded.name}"

    def complete(
        self,
        prompts: Sequence[str],
        prefills: Sequence[str],
        *,
        n: int,
        temperature: float,
        max_new_tokens: int,
        seed: int,
        reasoning: bool = False,
        progress: bool = False,
    ) -> list[list[str]]:
        from tqdm.auto import tqdm

        _check(prompts, prefills, n)
        tokenizer, model = self.loaded.tokenizer, self.loaded.model
        rows = [(p, f) for p, f in zip(prompts, prefills, strict=True) for _ in range(n)]
        sampling = temperature > 0
        torch.manual_seed(seed)
        texts: list[str] = []
        starts = range(0, len(rows), self.batch_size)
        for start in tqdm(starts, desc="sampling", unit="batch", disable=not progress):
            chunk = rows[start : start + self.batch_size]
            batch = build_chat_batch(
                tokenizer,
                [p for p, _ in chunk],
                [f for _, f in chunk],
                system_prompt=self.system_prompt,
            ).to(self.loaded.input_device)
            kwargs: dict[str, Any] = {"temperature": temperature} if sampling else {}
            with torch.no_grad():
                tokens = model.generate(
                    input_ids=batch.input_ids,
                    attention_mask=batch.attention_mask,
                    max_new_tokens=max_new_tokens,
                    do_sample=sampling,
                    pad_token_id=tokenizer.pad_token_id,
                    top_p=None,
                    top_k=None,
                    **kwargs,
                )
            new = tokens[:, batch.input_ids.shape[1] :]
            texts.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
        return [texts[i * n : (i + 1) * n] for i in range(len(prompts))]


class OpenAIGenerator:
    """Chat completions from a served model; requests run `workers` at a time."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        system_prompt: str | None = None,
        timeout: float = 600.0,
        workers: int = 8,
        thinking_switch: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if not model:
            raise TriggerscopeError("an OpenAI-compatible backend needs --served-model")
        self.client = OpenAIClient(
            base_url,
            api_key=api_key,
            timeout=timeout,
            hint="start the server (e.g. vllm serve ...) or check --base-url",
        )
        self.model = model
        self.system_prompt = system_prompt
        self.workers = workers
        self.thinking_switch = thinking_switch
        self.extra = dict(extra or {})
        self.name = f"openai:{model}@{self.client.base_url}"

    def payload(
        self,
        prompt: str,
        prefill: str,
        n: int,
        temperature: float,
        tokens: int,
        seed: int,
        reasoning: bool = False,
    ) -> dict[str, Any]:
        messages = []
        if self.system_prompt is not None:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": prompt})
        body: dict[str, Any] = {
            "model": self.model,
            "n": n,
            "temperature": temperature,
            "max_tokens": tokens,
            "seed": seed,
        }
        if prefill:
            messages.append({"role": "assistant", "content": prefill})
            body.update(continue_final_message=True, add_generation_prompt=False)
        body["messages"] = messages
        if self.thinking_switch:  # Qwen3's chat template: thinking only where reasoning is asked
            body["chat_template_kwargs"] = {"enable_thinking": reasoning}
        body.update(self.extra)
        return body

    def complete(
        self,
        prompts: Sequence[str],
        prefills: Sequence[str],
        *,
        n: int,
        temperature: float,
        max_new_tokens: int,
        seed: int,
        reasoning: bool = False,
        progress: bool = False,
    ) -> list[list[str]]:
        _check(prompts, prefills, n)
        payloads = [
            self.payload(p, f, n, temperature, max_new_tokens, seed + i, reasoning)
            for i, (p, f) in enumerate(zip(prompts, prefills, strict=True))
        ]
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            results = list(pool.map(self.client.chat, payloads))
        for texts in results:
            if len(texts) != n:
                raise TriggerscopeError(
                    f"the server returned {len(texts)} samples where {n} were asked for; "
                    f"does it support the 'n' parameter?"
                )
        return results
