"""FlowSep's released checkpoint (``v2_100k.ckpt``, a Lightning ``state_dict``), loaded strictly: the flow UNet from
its EMA copy (``model_ema.*``, which ``generate_sample``'s ``ema_scope`` swaps in), the mel VAE and BigVGAN
(``first_stage_model.*``), FLAN-T5's encoder (``cond_stage_models.0.model.*``) and ``scale_factor``. The
--text-encoder folder is google/flan-t5-large as transformers saves it: its ``config.json`` and tokenizer (the
encoder's weights are in the checkpoint). Every tensor is loaded or dropped by a named rule
(:mod:`lassbench.models.published.loading`)."""

from __future__ import annotations

from pathlib import Path

import torch

from lassbench.errors import LassbenchError
from lassbench.models.published import flowsep
from lassbench.models.published.checkpoint_files import (
    DropRule,
    check_vocabulary,
    match_state,
    read_t5_config,
    refuse_lassbench,
    tensors_of,
)
from lassbench.models.published.flowsep_unet import unet_shape
from lassbench.models.published.flowsep_vocoder import vocoder_shape
from lassbench.models.published.systems import PublishedSeparator, PublishedSpec

SCHEDULE = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
            "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
            "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
            "logvar")
DROPPED = [
    DropRule(r"model\.diffusion_model\..*",
             "the flow UNet's training weights: sampling runs under ema_scope, on the EMA copy (model_ema.*)"),
    DropRule(r"model_ema\.(decay|num_updates)", "the EMA's decay and update counter"),
    DropRule("|".join(SCHEDULE), "the DDPM noise schedule and logvar: never read by the rectified-flow Euler sampler"),
    DropRule(r"first_stage_model\.loss\..*", "the VAE's training loss (LPIPS, discriminator)"),
]
PREFIXES = {"first_stage_model.vocoder.": "vocoder.", "first_stage_model.": "vae.",
            "cond_stage_models.0.model.": "text."}
EMA = "model_ema."
TRAINING = "model.diffusion_model."
EMA_OWNER = "diffusion_model"  # LitEma names a parameter by its DiffusionWrapper path, dots removed


def load_flowsep(spec: PublishedSpec, payload: dict, path: Path, folder: str | None, tokenizer,
                 device: str) -> tuple[PublishedSeparator, dict]:
    from transformers import T5EncoderModel
    from transformers.initialization import no_init_weights

    state = _renamed(_lightning_state(payload, path))
    try:
        # the training copy has the EMA's shapes under dotted names
        shapes = {"unet": unet_shape(state, TRAINING), "vae": flowsep.vae_shape(state),
                  "vocoder": vocoder_shape(state)}
    except (KeyError, IndexError) as exc:
        raise LassbenchError(f"{path}: weight {exc} missing (FlowSep's UNet, VAE or vocoder cannot be rebuilt)") \
            from exc
    config = _t5_config(folder)
    with no_init_weights():
        net = flowsep.FlowSepSystem(T5EncoderModel(config).eval(), **shapes)
    check_vocabulary(spec, folder, tokenizer, config.vocab_size)
    ema = _ema_keys(net, state, path)
    for key, name in ema.items():
        state[name] = state.pop(key)
    dropped = match_state(net, state, DROPPED, path)
    report = {"model": spec.name, "keys_loaded": len(net.state_dict()), "keys_dropped": dropped, **shapes}
    return PublishedSeparator(spec, net, tokenizer, str(folder)).to(device).eval(), report


def _lightning_state(payload: dict, path: Path) -> dict[str, torch.Tensor]:
    refuse_lassbench(payload, path)
    state = tensors_of(payload["state_dict"] if isinstance(payload.get("state_dict"), dict) else payload)
    if not any(k.startswith(TRAINING) for k in state):
        raise LassbenchError(f"{path}: no FlowSep weights (model.diffusion_model.*, model_ema.*) in this file")
    if not any(k.startswith(EMA) for k in state):
        raise LassbenchError(f"{path}: no EMA weights (model_ema.*): FlowSep samples with them; this file holds "
                             "the training weights only")
    return state


def _renamed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        prefix = next((p for p in PREFIXES if key.startswith(p) and not key.startswith("first_stage_model.loss.")),
                      None)
        out[PREFIXES[prefix] + key[len(prefix):] if prefix else key] = value
    return out


def _ema_keys(net: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> dict[str, str]:
    """{file key: model key} for every UNet parameter: LitEma stores ``diffusion_model`` + its name without dots."""
    keys = {}
    for name, _ in net.unet.named_parameters():
        key = EMA + EMA_OWNER + name.replace(".", "")
        if key not in state:
            raise LassbenchError(f"{path}: 1 weight(s) missing, e.g. {key} (the EMA copy of unet.{name})")
        keys[key] = "unet." + name
    return keys


def _t5_config(folder: str | None):
    return read_t5_config(folder, "FlowSep needs google/flan-t5-large's folder (config.json + tokenizer) as "
                                  "--text-encoder")
