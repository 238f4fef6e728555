"""SAEs on disk: the SAELens layout both ways, and local folders of the public releases.

`load_sae` detects the layout of a folder and returns the one `SAE` module, so nothing else in
triggerscope ever sees a layout:

- SAELens: `cfg.json` + `sae_weights.safetensors` (W_enc [d_in, d_sae], W_dec [d_sae, d_in]).
- Llama Scope (OpenMOSS lm_saes): `hyperparams.json` + `checkpoints/final.safetensors` with
  nn.Linear tensors (`encoder.weight` [d_sae, d_in], `decoder.weight` [d_in, d_sae]), one scalar
  `jump_relu_threshold`, and "dataset-wise" norm scaling: the SAE reads x * sqrt(d_model) /
  dataset_average_activation_norm.in and its output is divided by the same factor (kept here as
  `input_scale`). With `sparsity_include_decoder_norm` the gate sees pre-activations times the
  decoder column norms, so those norms are folded into the encoder (an exact rewrite).
- Gemma Scope: `params.npz` with W_enc, W_dec, b_enc, b_dec, threshold (JumpReLU, b_dec not
  subtracted from the input); the layer comes from a `layer_N` folder in the path.
- EleutherAI sparsify: `<hookpoint>/cfg.json` + `sae.safetensors` (`encoder.weight`
  [d_sae, d_in], `W_dec` [d_sae, d_in], `b_dec`), TopK on (x - b_dec); `layers.N` is the output
  of decoder layer N.

`save_sae` writes the SAELens 6 layout. A norm-scaling factor is folded into the weights (as
SAELens' `fold_activation_norm_scaling_factor` does), so the file needs no extra factor.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from triggerscope import __version__
from triggerscope.atomic import write_json
from triggerscope.errors import TriggerscopeError
from triggerscope.sae.model import SAE, SAEConfig
from triggerscope.safetensors_io import load_state_dict, save_state_dict

SAELENS_CFG = "cfg.json"
SAELENS_WEIGHTS = "sae_weights.safetensors"
LLAMA_SCOPE_HPARAMS = "hyperparams.json"
LLAMA_SCOPE_WEIGHTS = "checkpoints/final.safetensors"
GEMMA_SCOPE_PARAMS = "params.npz"
SPARSIFY_CFG = "cfg.json"
SPARSIFY_WEIGHTS = "sae.safetensors"
LAYOUTS = ("saelens", "llama_scope", "gemma_scope", "sparsify")
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
# SAELens reads a cfg.json whose metadata.sae_lens_version is below 6 as the old flat layout;
# this marks the layout triggerscope writes (the SAELens 6 one), not a SAELens install.
SAELENS_LAYOUT_VERSION = "6.0.0"
_LAYOUT_HELP = (
    "expected SAELens (cfg.json + sae_weights.safetensors), Llama Scope (hyperparams.json + "
    "checkpoints/final.safetensors), Gemma Scope (params.npz) or sparsify (cfg.json + "
    "sae.safetensors)"
)
_RESID_POST = re.compile(r"^blocks\.(\d+)\.hook_resid_post$")
_SPARSIFY_LAYER = re.compile(r"^(?:.*\.)?(?:layers|h)\.(\d+)$")
_OWN_METADATA = ("layout", "triggerscope_layer", "model_name", "hook_name")
_WEIGHT_FILES = {SAELENS_WEIGHTS, SPARSIFY_WEIGHTS, GEMMA_SCOPE_PARAMS, "final.safetensors"}


def resid_post_hook(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


def layer_from_hook(hook_name: str) -> int | None:
    """The decoder layer of a `blocks.L.hook_resid_post` hook; None for any other hook."""
    match = _RESID_POST.match(hook_name or "")
    return int(match.group(1)) if match else None


def sae_folder(path: str | Path) -> Path:
    """The SAE's folder, also when given one of its files."""
    p = Path(path).expanduser()
    if p.is_file():
        if p.name == "final.safetensors" and p.parent.name == "checkpoints":
            return p.parent.parent
        if p.name in _WEIGHT_FILES | {SAELENS_CFG, LLAMA_SCOPE_HPARAMS}:
            return p.parent
        raise TriggerscopeError(f"{p} is a file; pass the SAE's folder ({_LAYOUT_HELP})")
    if not p.is_dir():
        raise TriggerscopeError(f"SAE folder {p} does not exist; check the path")
    return p


def _layout_of(folder: Path) -> str | None:
    if (folder / SAELENS_CFG).is_file() and (folder / SAELENS_WEIGHTS).is_file():
        return "saelens"
    if (folder / LLAMA_SCOPE_HPARAMS).is_file() and (folder / LLAMA_SCOPE_WEIGHTS).is_file():
        return "llama_scope"
    if (folder / GEMMA_SCOPE_PARAMS).is_file():
        return "gemma_scope"
    if (folder / SPARSIFY_CFG).is_file() and (folder / SPARSIFY_WEIGHTS).is_file():
        return "sparsify"
    return None


def detect_layout(path: str | Path) -> str:
    """One of LAYOUTS, or a clear error saying what the folder lacks."""
    folder = sae_folder(path)
    layout = _layout_of(folder)
    if layout is not None:
        return layout
    inside = sorted(c.name for c in folder.iterdir() if c.is_dir() and _layout_of(c))
    if inside:
        shown = ", ".join(inside[:5]) + (", ..." if len(inside) > 5 else "")
        raise TriggerscopeError(f"{folder} holds several SAEs ({shown}); pass one of those folders")
    if (folder / LLAMA_SCOPE_HPARAMS).is_file():
        raise TriggerscopeError(
            f"{folder} has hyperparams.json but no {LLAMA_SCOPE_WEIGHTS}; download the "
            f"checkpoint too"
        )
    if (folder / SAELENS_CFG).is_file():
        raise TriggerscopeError(
            f"{folder} has cfg.json but neither {SAELENS_WEIGHTS} (SAELens) nor "
            f"{SPARSIFY_WEIGHTS} (sparsify); the weights file is missing"
        )
    raise TriggerscopeError(f"{folder} is not an SAE folder: {_LAYOUT_HELP}")


# ---------------------------------------------------------------------------------- helpers


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TriggerscopeError(f"{path} is not readable JSON ({err})") from err
    if not isinstance(data, dict):
        raise TriggerscopeError(f"{path} should hold a JSON object")
    return data


def _int_field(cfg: dict[str, Any], key: str, source: Path) -> int:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise TriggerscopeError(f"{source} needs an integer {key!r}, found {value!r}")
    return int(value)


def _parse_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise TriggerscopeError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _assemble(
    cfg: SAEConfig, tensors: dict[str, torch.Tensor], source: Path, device: str, dtype: str
) -> SAE:
    """Check names and shapes, then build the SAE without a throw-away random init."""
    shapes: dict[str, tuple[int, ...]] = {
        "W_enc": (cfg.d_in, cfg.d_sae),
        "b_enc": (cfg.d_sae,),
        "W_dec": (cfg.d_sae, cfg.d_in),
        "b_dec": (cfg.d_in,),
    }
    if cfg.architecture == "jumprelu":
        shapes["threshold"] = (cfg.d_sae,)
    torch_dtype = _parse_dtype(dtype)
    state = {}
    for name, shape in shapes.items():
        if name not in tensors:
            raise TriggerscopeError(f"{source} lacks the tensor {name}; is the file complete?")
        tensor = tensors[name]
        if tuple(tensor.shape) != shape:
            raise TriggerscopeError(
                f"{source}: {name} has shape {tuple(tensor.shape)}, expected {shape} "
                f"(d_in {cfg.d_in}, d_sae {cfg.d_sae})"
            )
        state[name] = tensor.detach().to(torch_dtype).contiguous()
        if not torch.isfinite(state[name]).all():
            raise TriggerscopeError(f"{source}: {name} holds NaN or infinite values")
    with torch.device("meta"):
        sae = SAE(cfg)
    sae.load_state_dict(state, assign=True)
    sae.requires_grad_(False)
    return sae.to(device).eval()


def _fold_decoder_norms(tensors: dict[str, torch.Tensor]) -> None:
    """Unit-norm decoder rows with the norms moved into the encoder: the same x_hat, and a
    gate on pre-activations times decoder norms becomes a gate on the new pre-activations."""
    norms = tensors["W_dec"].norm(dim=1).clamp_min(1e-12)
    tensors["W_dec"] = tensors["W_dec"] / norms[:, None]
    tensors["W_enc"] = tensors["W_enc"] * norms[None, :]
    tensors["b_enc"] = tensors["b_enc"] * norms


# ---------------------------------------------------------------------------------- SAELens


def save_sae(sae: SAE, folder: str | Path, dtype: str = "float16") -> Path:
    """Write `sae` in the SAELens layout; each file is written atomically (weights first)."""
    torch_dtype = _parse_dtype(dtype)
    cfg = sae.cfg
    scale = float(cfg.input_scale)
    with torch.no_grad():
        tensors = {
            "W_enc": sae.W_enc.detach().float() * scale,
            "b_enc": sae.b_enc.detach().float(),
            "W_dec": sae.W_dec.detach().float() / scale,
            "b_dec": sae.b_dec.detach().float() / scale,
        }
        if cfg.architecture == "jumprelu":
            tensors["threshold"] = sae.threshold.detach().float()
    limit = torch.finfo(torch_dtype).max
    for name, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise TriggerscopeError(f"the SAE's {name} holds NaN or infinite values")
        if tensor.abs().max() > limit:
            raise TriggerscopeError(
                f"the SAE's {name} does not fit {dtype}; save it with dtype='float32'"
            )
    hook_name = cfg.hook_name or (resid_post_hook(cfg.layer) if cfg.layer is not None else "")
    metadata = {
        **{k: v for k, v in cfg.metadata.items() if k not in _OWN_METADATA},
        "model_name": cfg.model_name,
        "hook_name": hook_name,
        "sae_lens_version": SAELENS_LAYOUT_VERSION,
        "triggerscope_version": __version__,
    }
    if cfg.layer is not None and layer_from_hook(hook_name) != cfg.layer:
        metadata["triggerscope_layer"] = cfg.layer
    cfg_dict: dict[str, Any] = {
        "architecture": cfg.architecture,
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": dtype,
        "device": "cpu",
        "apply_b_dec_to_input": cfg.apply_b_dec_to_input,
        "normalize_activations": "none",  # any norm scaling is folded in above
        "reshape_activations": "none",
        "metadata": metadata,
    }
    if cfg.architecture == "topk":
        cfg_dict["k"] = cfg.k
        cfg_dict["rescale_acts_by_decoder_norm"] = False
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_state_dict(
        {k: v.to(torch_dtype) for k, v in tensors.items()},
        out / SAELENS_WEIGHTS,
        {"format": "pt"},
    )
    write_json(out / SAELENS_CFG, cfg_dict)
    return out


def _load_saelens(folder: Path, device: str, dtype: str) -> SAE:
    source = folder / SAELENS_CFG
    raw = _read_json(source)
    arch = raw.get("architecture", "standard")
    if arch not in ("standard", "topk", "jumprelu"):
        raise TriggerscopeError(
            f"{source}: SAE architecture {arch!r} is not supported; triggerscope reads "
            f"standard, topk and jumprelu SAEs"
        )
    norm = raw.get("normalize_activations") or "none"
    if norm not in ("none", False):
        raise TriggerscopeError(
            f"{source} asks for normalize_activations={norm!r}, which needs a factor the folder "
            f"does not carry; fold it into the weights first (SAELens: "
            f"fold_activation_norm_scaling_factor) and save again"
        )
    if (raw.get("reshape_activations") or "none") != "none":
        raise TriggerscopeError(f"{source}: attention (hook_z) SAEs are not supported")
    metadata = dict(raw.get("metadata") or {})
    model_name = str(metadata.pop("model_name", None) or raw.get("model_name") or "")
    hook_name = str(metadata.pop("hook_name", None) or raw.get("hook_name") or "")
    layer = layer_from_hook(hook_name)
    if layer is None and isinstance(metadata.get("triggerscope_layer"), int):
        layer = metadata["triggerscope_layer"]
    k = raw.get("k") or (raw.get("activation_fn_kwargs") or {}).get("k")
    cfg = SAEConfig(
        d_in=_int_field(raw, "d_in", source),
        d_sae=_int_field(raw, "d_sae", source),
        architecture=arch,
        k=int(k) if arch == "topk" and k is not None else None,
        apply_b_dec_to_input=bool(raw.get("apply_b_dec_to_input", True)),
        model_name=model_name,
        layer=layer,
        hook_name=hook_name,
        metadata={**metadata, "layout": "saelens"},
    )
    tensors = load_state_dict(folder / SAELENS_WEIGHTS)
    if "log_threshold" in tensors and "threshold" not in tensors:
        tensors["threshold"] = tensors.pop("log_threshold").float().exp()
    factor = tensors.pop("scaling_factor", None)
    if factor is not None and not torch.allclose(factor.float(), torch.ones_like(factor.float())):
        raise TriggerscopeError(
            f"{folder / SAELENS_WEIGHTS} carries a finetuning scaling_factor; fold it into "
            f"W_dec first (not supported)"
        )
    if arch == "topk" and raw.get("rescale_acts_by_decoder_norm"):
        tensors = {k: v.float() for k, v in tensors.items()}
        _fold_decoder_norms(tensors)
    return _assemble(cfg, tensors, folder / SAELENS_WEIGHTS, device, dtype)


# ------------------------------------------------------------------------------ Llama Scope


def _load_llama_scope(folder: Path, device: str, dtype: str) -> SAE:
    source = folder / LLAMA_SCOPE_HPARAMS
    hp = _read_json(source)
    d_model = _int_field(hp, "d_model", source)
    d_sae = _int_field(hp, "d_sae", source)
    hook_in = str(hp.get("hook_point_in", ""))
    hook_out = str(hp.get("hook_point_out", hook_in))
    if hook_in != hook_out:
        raise TriggerscopeError(
            f"{source}: this is a transcoder ({hook_in} -> {hook_out}); triggerscope reads SAEs "
            f"that reconstruct their own input"
        )
    act_fn = str(hp.get("act_fn", "relu")).lower()
    arch = {"jumprelu": "jumprelu", "topk": "topk", "relu": "standard"}.get(act_fn)
    if arch is None:
        raise TriggerscopeError(f"{source}: activation {act_fn!r} is not supported")
    norm_mode = str(hp.get("norm_activation", "inference"))
    scale = 1.0
    if norm_mode == "dataset-wise":
        norms = hp.get("dataset_average_activation_norm")
        norm_in = norms.get("in") if isinstance(norms, dict) else norms
        if not isinstance(norm_in, int | float) or not norm_in > 0:
            raise TriggerscopeError(
                f"{source}: norm_activation is dataset-wise but dataset_average_activation_norm "
                f"is {norms!r}; it should hold a positive 'in' value"
            )
        scale = math.sqrt(d_model) / float(norm_in)
    elif norm_mode != "inference":
        raise TriggerscopeError(
            f"{source}: norm_activation {norm_mode!r} is not supported (dataset-wise or "
            f"inference only)"
        )
    raw = load_state_dict(folder / LLAMA_SCOPE_WEIGHTS)
    missing = [n for n in ("encoder.weight", "encoder.bias", "decoder.weight") if n not in raw]
    if missing:
        raise TriggerscopeError(
            f"{folder / LLAMA_SCOPE_WEIGHTS} lacks {', '.join(missing)}; is it a Llama Scope "
            f"checkpoint?"
        )
    enc_w, dec_w = raw["encoder.weight"].float(), raw["decoder.weight"].float()
    if enc_w.dim() != 2 or dec_w.dim() != 2:
        raise TriggerscopeError(f"{folder / LLAMA_SCOPE_WEIGHTS}: weights should be matrices")
    tensors = {
        "W_enc": enc_w.T,
        "b_enc": raw["encoder.bias"].float(),
        "W_dec": dec_w.T,
        "b_dec": raw["decoder.bias"].float()
        if "decoder.bias" in raw and hp.get("use_decoder_bias", True)
        else torch.zeros(dec_w.shape[0]),
    }
    if arch == "jumprelu":
        if "log_jumprelu_threshold" in raw:
            tensors["threshold"] = raw["log_jumprelu_threshold"].float().exp()
        else:
            threshold = hp.get("jump_relu_threshold")
            if not isinstance(threshold, int | float):
                raise TriggerscopeError(f"{source}: act_fn is jumprelu but no jump_relu_threshold")
            tensors["threshold"] = torch.full((d_sae,), float(threshold))
    if tensors["W_dec"].shape == (d_sae, d_model) and hp.get("sparsity_include_decoder_norm", True):
        _fold_decoder_norms(tensors)
    model_name = str(hp.get("model_name") or "")
    if not model_name and folder.name.startswith("Llama3_1-8B-Base"):
        model_name = "meta-llama/Llama-3.1-8B"
    cfg = SAEConfig(
        d_in=d_model,
        d_sae=d_sae,
        architecture=arch,  # type: ignore[arg-type]
        k=_int_field(hp, "top_k", source) if arch == "topk" else None,
        apply_b_dec_to_input=bool(hp.get("apply_decoder_bias_to_pre_encoder", False)),
        input_scale=scale,
        model_name=model_name,
        layer=layer_from_hook(hook_in),
        hook_name=hook_in,
        metadata={"layout": "llama_scope", "norm_activation": norm_mode},
    )
    return _assemble(cfg, tensors, folder / LLAMA_SCOPE_WEIGHTS, device, dtype)


# ------------------------------------------------------------------------------ Gemma Scope

_GEMMA_REPO = re.compile(r"gemma-scope-(\d+b)-(pt|it)-(res|mlp|att|transcoders)")


def _load_gemma_scope(folder: Path, device: str, dtype: str) -> SAE:
    path = folder / GEMMA_SCOPE_PARAMS
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise TriggerscopeError(f"{path} is not a readable .npz file ({err})") from err
    tensors = {
        ("W_" + name[2:] if name.startswith("w_") else name): torch.from_numpy(a.astype(np.float32))
        for name, a in arrays.items()
    }
    if "W_enc" not in tensors or tensors["W_enc"].dim() != 2:
        raise TriggerscopeError(f"{path} lacks a W_enc matrix; is it a Gemma Scope params.npz?")
    d_in, d_sae = tensors["W_enc"].shape
    parts = folder.resolve().parts
    layers = [int(p[6:]) for p in parts if re.fullmatch(r"layer_\d+", p)]
    layer = layers[-1] if layers else None
    repos = [m for p in parts if (m := _GEMMA_REPO.search(p))]
    site = repos[-1].group(3) if repos else "res"  # a bare layer_N/width_K/... copy: residual
    residual = site == "res"
    hook_name = ""
    if layer is not None:
        hook_name = resid_post_hook(layer) if residual else f"blocks.{layer}.{site}"
    model_name = ""
    if repos:
        size, kind = repos[-1].group(1), repos[-1].group(2)
        model_name = f"google/gemma-2-{size}" + ("-it" if kind == "it" else "")
    cfg = SAEConfig(
        d_in=int(d_in),
        d_sae=int(d_sae),
        architecture="jumprelu",
        k=None,
        apply_b_dec_to_input=False,
        model_name=model_name,
        layer=layer if residual else None,
        hook_name=hook_name,
        metadata={"layout": "gemma_scope"},
    )
    return _assemble(cfg, tensors, path, device, dtype)


# -------------------------------------------------------------------------------- sparsify


def _load_sparsify(folder: Path, device: str, dtype: str) -> SAE:
    source = folder / SPARSIFY_CFG
    raw = _read_json(source)
    if raw.get("transcode"):
        raise TriggerscopeError(f"{source}: transcoders are not supported")
    if str(raw.get("activation", "topk")) != "topk":
        raise TriggerscopeError(f"{source}: activation {raw.get('activation')!r} is not supported")
    weights = load_state_dict(folder / SPARSIFY_WEIGHTS)
    if "W_skip" in weights or raw.get("skip_connection"):
        raise TriggerscopeError(f"{source}: SAEs with a skip connection are not supported")
    missing = [n for n in ("encoder.weight", "encoder.bias", "W_dec", "b_dec") if n not in weights]
    if missing:
        raise TriggerscopeError(
            f"{folder / SPARSIFY_WEIGHTS} lacks {', '.join(missing)}; is it a sparsify SAE?"
        )
    enc = weights["encoder.weight"].float()
    if enc.dim() != 2:
        raise TriggerscopeError(f"{folder / SPARSIFY_WEIGHTS}: encoder.weight should be a matrix")
    d_sae, d_in = enc.shape
    if "d_in" in raw and _int_field(raw, "d_in", source) != d_in:
        raise TriggerscopeError(
            f"{source}: d_in {raw['d_in']} but encoder.weight is {d_sae}x{d_in}"
        )
    match = _SPARSIFY_LAYER.match(folder.name)
    layer = int(match.group(1)) if match else None
    model_name = ""
    run_cfg = folder.parent / "config.json"
    if run_cfg.is_file():
        with_model = _read_json(run_cfg).get("model")
        model_name = with_model if isinstance(with_model, str) else ""
    cfg = SAEConfig(
        d_in=int(d_in),
        d_sae=int(d_sae),
        architecture="topk",
        k=_int_field(raw, "k", source),
        apply_b_dec_to_input=True,
        model_name=model_name,
        layer=layer,
        hook_name=resid_post_hook(layer) if layer is not None else folder.name,
        metadata={"layout": "sparsify", "hookpoint": folder.name},
    )
    tensors = {
        "W_enc": enc.T,
        "b_enc": weights["encoder.bias"],
        "W_dec": weights["W_dec"],
        "b_dec": weights["b_dec"],
    }
    return _assemble(cfg, tensors, folder / SPARSIFY_WEIGHTS, device, dtype)


_LOADERS = {
    "saelens": _load_saelens,
    "llama_scope": _load_llama_scope,
    "gemma_scope": _load_gemma_scope,
    "sparsify": _load_sparsify,
}


def load_sae(
    path: str | Path,
    device: str = "cpu",
    *,
    dtype: str = "float32",
    d_model: int | None = None,
) -> SAE:
    """Load an SAE from a local folder in any known layout; with `d_model`, check it fits."""
    folder = sae_folder(path)
    sae = _LOADERS[detect_layout(folder)](folder, device, dtype)
    if d_model is not None:
        sae.check_fits(d_model)
    return sae
