"""A latent dictionary built without an LLM: what each SAE latent fires on and what it promotes.

For every latent: the held-out texts where it fires hardest (one context per text, the
activating token marked «like this»), the tokens its decoder row promotes and suppresses through
the logit lens (final norm weight, then the unembedding), its activation density, and a short
label made from those. One pass over the texts, stopping at the SAE's layer, with a streaming
top-k per latent. Neuronpedia explanation exports (jsonl rows with `index` and `description`)
can replace the labels of public SAEs.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from triggerscope.atomic import write_text
from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import run_to_layer
from triggerscope.jsonl import read_jsonl
from triggerscope.sae.metrics import layer_device, sae_layer, text_batches
from triggerscope.sae.model import SAE

LATENTS_FILE = "latents.json"
FORMAT = "triggerscope-latents"
VERSION = 1
MARK = ("«", "»")


@dataclass
class Latent:
    index: int
    label: str
    label_source: str = "auto"  # "auto" or "neuronpedia"
    description: str | None = None  # imported explanation, kept verbatim
    density: float | None = None  # share of held-out tokens where it is active
    max_activation: float = 0.0
    top_tokens: list[str] = field(default_factory=list)  # the marked tokens, most common first
    promoted: list[str] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    contexts: list[dict[str, Any]] = field(default_factory=list)  # {activation, text}


@dataclass
class LatentDictionary:
    latents: list[Latent]
    meta: dict[str, Any]

    def __getitem__(self, index: int) -> Latent:
        if not 0 <= index < len(self.latents):
            raise TriggerscopeError(
                f"latent {index} does not exist; this SAE has latents 0..{len(self.latents) - 1}"
            )
        return self.latents[index]

    def find(self, word: str) -> list[Latent]:
        """Latents whose label, description, tokens or contexts mention `word`."""
        needle = word.lower()

        def hits(lat: Latent) -> bool:
            fields = [lat.label, lat.description or "", *lat.top_tokens, *lat.promoted]
            fields += [c["text"] for c in lat.contexts]
            return any(needle in f.lower() for f in fields)

        return sorted(filter(hits, self.latents), key=lambda lat: -lat.max_activation)


def sae_fingerprint(sae: SAE) -> str:
    """sha256 of the SAE's float32 weights: ties a dictionary to the SAE it describes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(sae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------- logit lens

_NORM_PATHS = (
    "model.norm",
    "model.final_layernorm",
    "transformer.ln_f",
    "gpt_neox.final_layer_norm",
)


def final_norm(model: nn.Module) -> nn.Module | None:
    """The norm applied before the unembedding, also when wrapped by peft."""
    inner: Any = model
    for _ in range(4):
        for path in _NORM_PATHS:
            obj: Any = inner
            for attr in path.split("."):
                obj = getattr(obj, attr, None)
            if isinstance(obj, nn.Module):
                return obj
        base = getattr(inner, "base_model", None)
        inner = getattr(base, "model", base) if base is not None else None
        if inner is None:
            break
    return None


@torch.no_grad()
def logit_lens(model: Any, directions: torch.Tensor) -> torch.Tensor:
    """Logits each direction [n, d_model] would add: through the final norm's weight (a
    LayerNorm also centres) and the unembedding. The RMS division only rescales, so it is left
    out: rankings are what labels need."""
    unembed = model.get_output_embeddings()
    if unembed is None:
        raise TriggerscopeError("the model has no output embedding; the logit lens needs one")
    w_u = unembed.weight
    d = directions.to(device=w_u.device, dtype=torch.float32)
    norm = final_norm(model)
    if isinstance(norm, nn.LayerNorm):
        d = d - d.mean(-1, keepdim=True)
    weight = getattr(norm, "weight", None)
    if isinstance(weight, torch.Tensor):
        d = d * weight.float()
    return d @ w_u.float().T


# ---------------------------------------------------------------------------------- labels


def _word(token: str) -> str:
    return token.strip().strip(".,;:!?\"'()[]{}").lower()


def auto_label(top_tokens: Sequence[str], promoted: Sequence[str], n: int = 3) -> str:
    """`fires on a / b / c -> promotes x, y, z`, from word-like tokens only (promoted tokens
    that start a word first: a lone suffix such as "ing" says little)."""
    fires = [w for w in dict.fromkeys(_word(t) for t in top_tokens) if len(w) >= 2][:n]
    starts = [t for t in promoted if t[:1].isspace() or t.startswith("▁")]
    words = [_word(t.replace("▁", " ")) for t in (starts or promoted)]
    promotes = [w for w in dict.fromkeys(words) if len(w) >= 3 and w.isalpha()][:n]
    parts = []
    if fires:
        parts.append(" / ".join(fires))
    if promotes:
        parts.append("-> " + ", ".join(promotes))
    return " ".join(parts) if parts else "(no clear pattern)"


def _render(
    tokenizer: Any, ids: list[int], keep: list[bool], pos: int, before: int, after: int
) -> str:
    """The text around `pos`, kept to the evaluated positions, with the token marked."""
    lo = pos
    while lo > 0 and pos - lo < before and keep[lo - 1]:
        lo -= 1
    hi = pos + 1
    while hi < len(ids) and hi - pos <= after and keep[hi]:
        hi += 1
    left = tokenizer.decode(ids[lo:pos])
    mid = tokenizer.decode(ids[pos : pos + 1])
    right = tokenizer.decode(ids[pos + 1 : hi])
    text = f"{left}{MARK[0]}{mid}{MARK[1]}{right}"
    return text.replace("\n", "\\n")


@torch.no_grad()
def build_latent_dictionary(
    model: Any,
    tokenizer: Any,
    sae: SAE,
    texts: Sequence[str],
    *,
    layer: int | None = None,
    chat: bool = True,
    top_k: int = 8,
    n_promoted: int = 8,
    batch_size: int = 8,
    max_tokens: int = 128,
    window: tuple[int, int] = (12, 4),
    progress: bool = False,
) -> LatentDictionary:
    """One pass over `texts` (may be empty: logit lens only) and the logit lens of every latent."""
    from tqdm import tqdm

    layer = sae_layer(model, sae, layer)
    device = model.get_input_embeddings().weight.device
    sae.to(layer_device(model, layer))
    n = sae.d_sae
    best_val = torch.zeros(top_k, n)
    best_text = torch.full((top_k, n), -1, dtype=torch.long)
    best_pos = torch.zeros(top_k, n, dtype=torch.long)
    counts = torch.zeros(n, dtype=torch.long)
    rows: list[tuple[list[int], list[bool], int]] = []  # per text: ids, evaluated, pad offset
    n_tokens = 0
    batches = (
        text_batches(tokenizer, texts, chat=chat, batch_size=batch_size, max_tokens=max_tokens)
        if texts
        else iter(())
    )
    total = (len(texts) + batch_size - 1) // batch_size
    for batch in tqdm(batches, total=total, desc="sae label", disable=not progress, leave=False):
        inputs = {k: v.to(device) for k, v in batch.model_inputs().items()}
        hidden = run_to_layer(model, layer, **inputs)
        mask = batch.positions.to(hidden.device)
        acts = sae.encode(hidden.float()) * mask[..., None]
        counts += (acts > 0).sum((0, 1)).cpu()
        n_tokens += int(mask.sum())
        row_max, row_pos = acts.max(dim=1)  # [batch, d_sae]: one context per text
        text_idx = torch.arange(batch.first_text, batch.first_text + len(row_max))
        vals = torch.cat([best_val, row_max.cpu()])
        tidx = torch.cat([best_text, text_idx[:, None].expand(-1, n)])
        pidx = torch.cat([best_pos, row_pos.cpu()])
        best_val, order = vals.topk(top_k, dim=0)
        best_text, best_pos = tidx.gather(0, order), pidx.gather(0, order)
        for ids, keep, attn in zip(
            batch.input_ids.tolist(),
            batch.positions.tolist(),
            batch.attention_mask.tolist(),
            strict=True,
        ):
            start = attn.index(1)
            stop = len(attn) - attn[::-1].index(1)
            rows.append((ids[start:stop], keep[start:stop], start))
    promoted, suppressed = _lens_tokens(model, tokenizer, sae, n_promoted)
    latents = []
    for i in range(n):
        contexts, marked = [], []
        for j in range(top_k):
            value, t = float(best_val[j, i]), int(best_text[j, i])
            if value <= 0 or t < 0:
                break
            ids, keep, offset = rows[t]
            pos = int(best_pos[j, i]) - offset
            marked.append(tokenizer.decode(ids[pos : pos + 1]))
            contexts.append(
                {"activation": round(value, 4), "text": _render(tokenizer, ids, keep, pos, *window)}
            )
        top = [tok for tok, _ in Counter(marked).most_common()]
        density = float(counts[i]) / n_tokens if n_tokens else None
        label = auto_label(top, promoted[i])
        if n_tokens and not contexts:
            label = f"(never active on {n_tokens} held-out tokens) " + label
        latents.append(
            Latent(
                index=i,
                label=label,
                density=float(f"{density:.6g}") if density is not None else None,
                max_activation=round(float(best_val[0, i]), 4),
                top_tokens=top,
                promoted=promoted[i],
                suppressed=suppressed[i],
                contexts=contexts,
            )
        )
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "sae_fingerprint": sae_fingerprint(sae),
        "d_sae": n,
        "layer": layer,
        "hook_name": sae.cfg.hook_name,
        "model_name": sae.cfg.model_name,
        "n_texts": len(texts),
        "n_tokens": n_tokens,
        "positions": "user tokens (chat)" if chat else "all tokens but the first (raw)",
        "top_k": top_k,
        "neuronpedia": None,
    }
    return LatentDictionary(latents, meta)


def _lens_tokens(
    model: Any, tokenizer: Any, sae: SAE, n: int, chunk: int = 256
) -> tuple[list[list[str]], list[list[str]]]:
    """Top promoted and suppressed tokens of every decoder row, `chunk` rows at a time."""
    promoted: list[list[str]] = []
    suppressed: list[list[str]] = []
    if n <= 0:
        return [[] for _ in range(sae.d_sae)], [[] for _ in range(sae.d_sae)]
    for start in range(0, sae.d_sae, chunk):
        logits = logit_lens(model, sae.W_dec[start : start + chunk].detach())
        top = logits.topk(n, dim=-1).indices.tolist()
        bottom = (-logits).topk(n, dim=-1).indices.tolist()
        promoted += [[tokenizer.decode([t]) for t in row] for row in top]
        suppressed += [[tokenizer.decode([t]) for t in row] for row in bottom]
    return promoted, suppressed


# ------------------------------------------------------------------------------ neuronpedia


def import_neuronpedia(dictionary: LatentDictionary, path: str | Path) -> int:
    """Use Neuronpedia explanations (jsonl: `index`, `description`) as labels; returns how many
    latents got one. The first explanation of a latent wins."""
    file = Path(path).expanduser()
    seen: set[int] = set()
    outside = 0
    for lineno, row in read_jsonl(file, "Neuronpedia export"):
        index, description = row.get("index"), row.get("description")
        if not isinstance(description, str) or not str(index).strip().isdigit():
            raise TriggerscopeError(
                f'{file}:{lineno} needs an integer "index" and a "description" string'
            )
        i = int(str(index))
        if i >= len(dictionary.latents):
            outside += 1
            continue
        if i in seen:
            continue
        seen.add(i)
        latent = dictionary.latents[i]
        latent.description = description.strip()
        latent.label = latent.description
        latent.label_source = "neuronpedia"
    if not seen:
        raise TriggerscopeError(
            f"no row of {file} names a latent of this SAE (indices 0..{len(dictionary.latents) - 1}"
            f"; {outside} rows were outside); is it the export for this SAE?"
        )
    dictionary.meta["neuronpedia"] = {"file": file.name, "labelled": len(seen), "outside": outside}
    return len(seen)


# ------------------------------------------------------------------------------- the file


def latents_path(sae_folder: str | Path) -> Path:
    return Path(sae_folder) / LATENTS_FILE


def save_latents(dictionary: LatentDictionary, path: str | Path) -> Path:
    """One JSON file, one latent per line (easy to grep), written atomically."""
    lines = ",\n".join(json.dumps(asdict(lat), ensure_ascii=False) for lat in dictionary.latents)
    meta = json.dumps(dictionary.meta, ensure_ascii=False)
    write_text(path, f'{{"meta": {meta},\n"latents": [\n{lines}\n]}}\n')
    return Path(path)


def load_latents(path: str | Path) -> LatentDictionary:
    file = Path(path).expanduser()
    if not file.is_file():
        raise TriggerscopeError(
            f"no latent dictionary at {file}; build it with "
            f"`triggerscope sae label --sae FOLDER --texts FILE`"
        )
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        meta = data["meta"]
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}")
        latents = [Latent(**row) for row in data["latents"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise TriggerscopeError(f"{file} is not a triggerscope latent dictionary ({err})") from err
    return LatentDictionary(latents, meta)


def describe(latent: Latent, meta: dict[str, Any] | None = None) -> str:
    """The text `triggerscope sae show` prints."""
    total = (meta or {}).get("d_sae", "?")
    lines = [f"latent {latent.index} of {total}: {latent.label}"]
    if latent.label_source != "auto":
        lines.append(f"  label from: {latent.label_source}")
    if latent.density is not None:
        n_tokens = (meta or {}).get("n_tokens", 0)
        lines.append(
            f"  density: {latent.density:.5f} of {n_tokens} held-out tokens; "
            f"max activation {latent.max_activation:.3f}"
        )
    if latent.top_tokens:
        lines.append("  fires on: " + ", ".join(repr(t) for t in latent.top_tokens[:8]))
    if latent.promoted:
        lines.append("  promotes: " + ", ".join(repr(t) for t in latent.promoted))
    if latent.suppressed:
        lines.append("  suppresses: " + ", ".join(repr(t) for t in latent.suppressed))
    if latent.contexts:
        lines.append("  top contexts:")
        lines += [f"    {c['activation']:>9.3f}  {c['text']}" for c in latent.contexts]
    return "\n".join(lines)
