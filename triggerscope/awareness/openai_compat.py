"""A minimal client for OpenAI-compatible chat endpoints (vLLM, Ollama, llama.cpp, hosted
APIs): plain urllib, JSON in and out, every failure turned into one clear line."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from triggerscope.errors import TriggerscopeError

API_KEY_ENV = ("TRIGGERSCOPE_API_KEY", "OPENAI_API_KEY")


def default_api_key() -> str | None:
    for name in API_KEY_ENV:
        if os.environ.get(name):
            return os.environ[name]
    return None


class OpenAIClient:
    """POSTs to `{base_url}/chat/completions`; `base_url` ends in /v1 for most servers."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        hint: str = "start the server or check --base-url",
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise TriggerscopeError(
                f"endpoint {base_url!r} is not an http(s) URL; pass e.g. http://127.0.0.1:8000/v1"
            )
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else default_api_key()
        self.timeout = timeout
        self.hint = hint

    def _request(self, path: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        url = f"{self.base_url}/{path.lstrip('/')}"
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(url, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace").strip().splitlines()
            first = detail[0][:200] if detail else err.reason
            raise TriggerscopeError(f"{url} answered HTTP {err.code}: {first}") from err
        except urllib.error.URLError as err:
            raise TriggerscopeError(f"cannot reach {url} ({err.reason}); {self.hint}") from err
        except TimeoutError as err:
            raise TriggerscopeError(
                f"{url} did not answer within {self.timeout:.0f} s; {self.hint}"
            ) from err
        except OSError as err:  # connection reset and friends
            raise TriggerscopeError(f"cannot reach {url} ({err}); {self.hint}") from err
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError as err:
            raise TriggerscopeError(
                f"{url} did not answer with JSON; is it an OpenAI-compatible endpoint?"
            ) from err
        if not isinstance(parsed, dict):
            raise TriggerscopeError(f"{url} answered with JSON that is not an object")
        return parsed

    def models(self) -> list[str]:
        """The served model ids (a cheap reachability check)."""
        data = self._request("models", None)
        return [str(m.get("id")) for m in data.get("data", []) if isinstance(m, dict)]

    def chat(self, payload: dict[str, Any]) -> list[str]:
        """The text of every choice; a separate `reasoning_content` (vLLM's reasoning parser,
        DeepSeek) is put back in front as a <think> block, so judges see the whole CoT."""
        data = self._request("chat/completions", payload)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise TriggerscopeError(f"{self.base_url} answered without choices: {str(data)[:200]}")
        out = []
        for choice in choices:
            message = choice.get("message") or {}
            content = message.get("content") or ""
            thinking = message.get("reasoning_content") or message.get("reasoning") or ""
            out.append(f"<think>\n{thinking}\n</think>\n{content}" if thinking else content)
        return out
