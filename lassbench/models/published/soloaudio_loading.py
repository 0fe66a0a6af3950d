"""SoloAudio's three released files, loaded strictly: the UDiT (``soloaudio_v2.pt``, ``{'model': state_dict}``), the
VAE beside it (``audio-vae.pt``, a Lightning ``state_dict`` whose ``autoencoder.*`` entries ``load_vae`` keeps), and
CLAP (laion/larger_clap_general as transformers saves it: ``config.json`` + ``model.safetensors`` or
``pytorch_model.bin``) in the --text-encoder folder, beside its tokenizer. Every tensor is loaded or dropped by a named
rule (:mod:`lassbench.models.published.loading`)."""

from __future__ import annotations

from pathlib import Path

import torch

from lassbench.errors import LassbenchError
from lassbench.models.published import soloaudio
from lassbench.models.published.checkpoint_files import (
    DropRule,
    check_vocabulary,
    match_and_count,
    read_checkpoint_file,
    refuse_lassbench,
    tensors_of,
)
from lassbench.models.published.systems import PublishedSeparator, PublishedSpec

VAE_FILE = "audio-vae.pt"  # tse_languageTSE.py --autoencoder-path default: pretrained_models/audio-vae.pt
DROPPED = [
    DropRule(r"clap\.(audio_model|audio_projection)\..*", "CLAP's audio tower and projection: used for audio queries"),
    DropRule(r"clap\.logit_scale_[at]", "CLAP's contrastive-training temperatures: not part of get_text_features"),
]
VAE_TRAINING_ONLY = "the VAE file's training-only entries (not autoencoder.*): load_vae keeps autoencoder.* only"
INDEX_BUFFERS = "absent from the CLAP file, made by transformers: text position_ids / token_type_ids"


def load_soloaudio(spec: PublishedSpec, payload: dict, path: Path, folder: str | None, tokenizer,
                   device: str) -> tuple[PublishedSeparator, dict]:
    from transformers import ClapTextModelWithProjection
    from transformers.initialization import no_init_weights

    udit = _udit_state(payload, path)
    vae, training_only = _vae_state(path)
    clap_config, clap = _clap_files(folder)
    state = {**{"udit." + k: v for k, v in udit.items()}, **{"vae." + k: v for k, v in vae.items()},
             **{"clap." + k: v for k, v in clap.items()}}
    try:
        udit_shape, vae_shape = soloaudio.udit_shape(state), soloaudio.vae_shape(state)
    except (KeyError, IndexError) as exc:
        raise LassbenchError(f"{path}: weight {exc} missing (SoloAudio's UDiT or VAE cannot be rebuilt)") from exc
    with no_init_weights():
        net = soloaudio.SoloAudioSystem(ClapTextModelWithProjection(clap_config).eval(), udit_shape, vae_shape)
    check_vocabulary(spec, folder, tokenizer, clap_config.vocab_size)
    made = {k: v for k, v in net.state_dict().items()
            if k.startswith("clap.") and k.endswith(("position_ids", "token_type_ids")) and k not in state}
    state.update(made)
    dropped = match_and_count(net, state, DROPPED, path, {VAE_TRAINING_ONLY: training_only, INDEX_BUFFERS: len(made)})
    report = {"model": spec.name, "keys_loaded": len(net.state_dict()), "keys_dropped": dropped, "udit": udit_shape,
              "vae": vae_shape}
    return PublishedSeparator(spec, net, tokenizer, str(folder)).to(device).eval(), report


def _udit_state(payload: dict, path: Path) -> dict[str, torch.Tensor]:
    refuse_lassbench(payload, path)
    if isinstance(payload.get("state_dict"), dict) and any(str(k).startswith("autoencoder.")
                                                           for k in payload["state_dict"]):
        raise LassbenchError(f"{path}: this is SoloAudio's VAE ({VAE_FILE}): pass the diffusion checkpoint "
                             f"(soloaudio_v2.pt); the VAE is read from {VAE_FILE} beside it")
    state = tensors_of(payload["model"] if isinstance(payload.get("model"), dict) else payload)
    if not any(k.startswith("in_blocks.") for k in state):
        raise LassbenchError(f"{path}: no SoloAudio UDiT weights (in_blocks.*) in this file")
    return state


def _vae_state(path: Path) -> tuple[dict[str, torch.Tensor], int]:
    file = path.parent / VAE_FILE
    if not file.is_file():
        raise LassbenchError(f"{path}: SoloAudio's VAE ({VAE_FILE} of the release's pretrained_models/) must sit "
                             f"beside the checkpoint; {file} not found")
    payload = read_checkpoint_file(file)
    state = tensors_of(payload["state_dict"] if isinstance(payload.get("state_dict"), dict) else payload)
    kept = {k.removeprefix("autoencoder."): v for k, v in state.items() if k.startswith("autoencoder.")}
    if not kept:
        raise LassbenchError(f"{file}: no VAE weights (autoencoder.*) in this file")
    return kept, len(state) - len(kept)


def _clap_files(folder: str | None):
    """(ClapTextConfig, tensors) of the CLAP checkpoint folder; the text tower is what SoloAudio reads."""
    from transformers import ClapConfig, ClapTextConfig

    where = Path(folder) if folder else None
    hint = "SoloAudio needs laion/larger_clap_general's folder (config.json + weights + tokenizer) as --text-encoder"
    if where is None or not (where / "config.json").is_file():
        raise LassbenchError(f"--text-encoder {folder}: no CLAP config.json; {hint}")
    try:
        config = ClapConfig.from_pretrained(where, local_files_only=True).text_config
    except Exception:  # a text-tower-only folder (ClapTextModelWithProjection.save_pretrained)
        config = ClapTextConfig.from_pretrained(where, local_files_only=True)
    if (where / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return config, load_file(str(where / "model.safetensors"))
    if (where / "pytorch_model.bin").is_file():
        return config, tensors_of(read_checkpoint_file(where / "pytorch_model.bin"))
    raise LassbenchError(f"--text-encoder {folder}: no CLAP weights (model.safetensors or pytorch_model.bin); {hint}")
