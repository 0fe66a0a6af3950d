"""Strict, explained loading of published checkpoints.

Every tensor of the file is either loaded into the model or dropped by a named rule with its reason (:data:`DROPPED`);
anything else — a missing key, an unexpected key, a mis-shaped tensor — is one error line naming it. Files are read
with ``torch.load(..., weights_only=True)`` only; a Lightning checkpoint whose extra entries (hyper-parameters,
callbacks) hold objects that the weights-only unpickler refuses is read by :func:`read_tensors_only`, which rebuilds
tensors and plain containers and turns every other object into an inert placeholder — nothing from the file is ever
executed. Recognisable mistakes (the CLAP file given as the separator, the wrong sample-rate variant, a Lightning
checkpoint where LASS-Net's dict is expected, a truncated download) get their own message.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from lassbench.errors import LassbenchError
from lassbench.models.published.checkpoint_files import (
    DropRule,
    check_vocabulary,
    load_tokenizer,
    match_and_count,
    match_state,
    read_checkpoint_file,
    refuse_lassbench,
    tensors_of,
)
from lassbench.models.published.resunet30 import dprnn_shape
from lassbench.models.published.systems import (
    PUBLISHED,
    VARIANTS,
    AudioSepSystem,
    PublishedSeparator,
    PublishedSpec,
)

DROPPED: dict[str, list[DropRule]] = {
    "lassnet-release": [
        DropRule(r"module\.text_embedder\.bert_layer\.embeddings\.(position_ids|token_type_ids)",
                 "index buffer saved by older transformers; recomputed"),
    ],
    "resunet30": [
        DropRule(r"ss_model\.base\.(stft|istft)\..*",
                 "torchlibrosa's frozen STFT/ISTFT kernels (fixed DFT and Hann window; torch.stft computes the same)"),
        DropRule(r"query_encoder\.model\.(audio_branch|audio_projection|audio_transform)\..*",
                 "CLAP's audio branch: unused for text queries"),
        DropRule(r"query_encoder\.model\.(text_transform\..*|logit_scale_a|logit_scale_t)",
                 "CLAP's contrastive-training heads: not part of get_text_embedding"),
        DropRule(r"query_encoder\.model\.text_branch\.embeddings\.(position_ids|token_type_ids)",
                 "index buffer saved by older transformers; recomputed"),
    ],
    "clapsep": [
        DropRule(r"clap_model\.model\.(audio_branch|audio_projection|audio_transform)\..*",
                 "CLAP's own audio branch and projection: used for audio queries only"),
        DropRule(r"clap_model\.model\.(text_transform\..*|logit_scale_a|logit_scale_t)",
                 "CLAP's contrastive-training heads: not part of get_text_embedding"),
        DropRule(r"clap_model\.model\.text_branch\.embeddings\.(position_ids|token_type_ids)",
                 "index buffer saved by older transformers; recomputed"),
        DropRule(r"audio_branch\.(norm|tscam_conv|head)\..*",
                 "HTSAT's classification head: computed by the official forward, never read by the decoder"),
    ],
}
LORA_MERGED = "LoRA adapters (lora_A, lora_B) merged into their projection's weight: W + B A / r"
KERNELS_COMPUTED = "absent from the file, computed as torchlibrosa does: STFT / ISTFT kernels and window"

BERT_PREFIX = "module.text_embedder.bert_layer."
CLAPSEP_TEXT_PREFIX = "clap_model.model.text_branch."
ROBERTA_PREFIX = "query_encoder.model.text_branch."
DPRNN_PREFIX = "ss_model.base.DPRNN.0.row_rnn."


def load_published(name: str, path: str | Path, *, text_encoder: str | None = None,
                   device: str = "cpu") -> tuple[PublishedSeparator, dict]:
    """Build published system ``name`` from ``path``; (model, report) where report names what was dropped."""
    from transformers.initialization import no_init_weights

    spec = PUBLISHED[name]
    path = Path(path)
    tokenizer = load_tokenizer(spec, text_encoder)  # before reading a checkpoint of up to 1.5 GB
    if spec.family == "sam-audio":  # a folder (config.json + checkpoint.pt) or its checkpoint file
        from lassbench.models.published.sam_audio_loading import load_sam_audio

        return load_sam_audio(spec, path, text_encoder, tokenizer, device)
    payload = read_checkpoint_file(path)
    if spec.family == "clapsep":
        return _load_clapsep(spec, payload, path, text_encoder, tokenizer, device)
    if spec.family == "soloaudio":
        from lassbench.models.published.soloaudio_loading import load_soloaudio

        return load_soloaudio(spec, payload, path, text_encoder, tokenizer, device)
    if spec.family == "flowsep":
        from lassbench.models.published.flowsep_loading import load_flowsep

        return load_flowsep(spec, payload, path, text_encoder, tokenizer, device)
    if spec.family == "lassnet-release":
        state = _lassnet_state(payload, path)
    else:
        state = _audiosep_state(payload, path, spec, text_encoder)
        spec = _check_variant(state, spec, path)
    with no_init_weights():  # every weight comes from the file: skip initialising 50-180 M parameters first
        if spec.family == "lassnet-release":
            text = _text_model(state, BERT_PREFIX, "bert", path)
            net = _build_lassnet(text)
        else:
            text = _text_model(state, ROBERTA_PREFIX, "roberta", path)
            net = AudioSepSystem(spec, text, dprnn_shape(state, DPRNN_PREFIX))
    check_vocabulary(spec, text_encoder, tokenizer, text.config.vocab_size)
    dropped = match_state(net, state, DROPPED[spec.family], path)
    model = PublishedSeparator(spec, net, tokenizer, str(text_encoder))
    report = {"model": name, "keys_loaded": len(state) - sum(dropped.values()), "keys_dropped": dropped}
    return model.to(device).eval(), report


def _load_clapsep(spec: PublishedSpec, payload: dict, path: Path, folder: str | None, tokenizer,
                  device: str) -> tuple[PublishedSeparator, dict]:
    from transformers.initialization import no_init_weights

    from lassbench.models.published import clapsep

    state = _clapsep_state(payload, path, folder)
    kernels = {k: v for k, v in clapsep.torchlibrosa_kernels().items() if k not in state}
    state.update(kernels)  # on_save_checkpoint's tuned-only file leaves the fixed STFT / ISTFT kernels out
    lora = sum(k.endswith((".lora_A", ".lora_B")) for k in state)
    state = clapsep.merge_lora(state)
    try:
        encoder, decoder = clapsep.shape_of(state)
    except (KeyError, IndexError) as exc:
        raise LassbenchError(f"{path}: weight {exc} missing (CLAPSep's HTSAT or decoder cannot be rebuilt)") from exc
    with no_init_weights():
        net = clapsep.CLAPSepSystem(_text_model(state, CLAPSEP_TEXT_PREFIX, "roberta", path), encoder, decoder)
    check_vocabulary(spec, folder, tokenizer, net.clap_model.model.text_branch.config.vocab_size)
    dropped = match_and_count(net, state, DROPPED["clapsep"], path, {LORA_MERGED: lora, KERNELS_COMPUTED: len(kernels)})
    report = {"model": spec.name, "keys_loaded": len(net.state_dict()), "keys_dropped": dropped, "encoder": encoder,
              "decoder": decoder}
    return PublishedSeparator(spec, net, tokenizer, str(folder)).to(device).eval(), report


def _clapsep_state(payload: dict, path: Path, folder: str | None) -> dict[str, torch.Tensor]:
    """The Lightning checkpoint of CLAPSep's train.py (``state_dict``: ``clap_model.*``, ``audio_branch.*``,
    ``decoder_model.*``, ``stft.*``, ``istft.*``) or the same keys saved bare; a file holding only the tuned tensors
    (``on_save_checkpoint`` in model/CLAPSep.py keeps LoRA, attention biases and the decoder) is completed from the
    LAION-CLAP checkpoint it was trained from, found alone in the --text-encoder folder."""
    refuse_lassbench(payload, path)
    state = tensors_of(payload["state_dict"] if isinstance(payload.get("state_dict"), dict) else payload)
    if not any(k.startswith("decoder_model.") for k in state):
        if any(k.startswith("ss_model.") for k in state):
            raise LassbenchError(f"{path}: an AudioSep-family separator: run it as audiosep, dcase2024-baseline or "
                                 f"audiosep-dp")
        if any("audio_branch." in k for k in state) and any("text_branch." in k for k in state):
            raise LassbenchError(f"{path}: this is a LAION-CLAP checkpoint, not CLAPSep's: pass CLAPSep's checkpoint "
                                 f"and put the CLAP file (music_audioset_epoch_15_esc_90.14.pt) in --text-encoder")
        raise LassbenchError(f"{path}: no CLAPSep decoder weights (decoder_model.*) in this file")
    needed = ("clap_model.model.text_branch.embeddings.word_embeddings.weight", "audio_branch.patch_embed.proj.weight")
    if any(k not in state for k in needed):
        state = {**_clapsep_base_from_folder(folder, path), **state}
    return state


def _clapsep_base_from_folder(folder: str | None, path: Path) -> dict[str, torch.Tensor]:
    """LAION-CLAP's tensors under CLAPSep's names: the whole model as ``clap_model.model.*`` and its audio branch
    again as ``audio_branch.*`` (the copy that CLAPSep tunes with LoRA)."""
    files = sorted(Path(folder).glob("*.pt")) if folder else []
    if len(files) != 1:
        raise LassbenchError(
            f"{path}: holds only CLAPSep's tuned tensors (no CLAP text branch or HTSAT weights); put the LAION-CLAP "
            f"checkpoint it was trained from (music_audioset_epoch_15_esc_90.14.pt) alone beside the tokenizer in "
            f"the --text-encoder folder"
        )
    payload = read_checkpoint_file(files[0])
    clap = {k.removeprefix("module."): v for k, v in
            tensors_of(payload["state_dict"] if isinstance(payload.get("state_dict"), dict) else payload).items()}
    if not any(k.startswith("text_branch.") for k in clap):
        raise LassbenchError(f"{files[0]}: not a LAION-CLAP checkpoint (no text_branch.* weights)")
    base = {"clap_model.model." + k: v for k, v in clap.items()}
    base.update({k: v for k, v in clap.items() if k.startswith("audio_branch.")})
    return base


def _lassnet_state(payload: dict, path: Path) -> dict[str, torch.Tensor]:
    if "state_dict" in payload or "pytorch-lightning_version" in payload:
        raise LassbenchError(f"{path}: a Lightning checkpoint (AudioSep family), not LASS-Net's {{'model': "
                             f"state_dict}}: run it as audiosep, dcase2024-baseline or audiosep-dp")
    refuse_lassbench(payload, path)
    state = payload["model"] if isinstance(payload.get("model"), dict) else payload
    if not any(".UNet." in f".{k}" for k in state):
        raise LassbenchError(f"{path}: no LASS-Net separator weights (module.UNet.*) in this file")
    # saved without nn.DataParallel: same tensors, without the prefix
    return {k if k.startswith("module.") else f"module.{k}": v for k, v in tensors_of(state).items()}


def _audiosep_state(payload: dict, path: Path, spec: PublishedSpec, folder: str | None) -> dict[str, torch.Tensor]:
    if "model" in payload and isinstance(payload["model"], dict) and any("UNet." in k for k in payload["model"]):
        raise LassbenchError(f"{path}: this is the LASS-Net release checkpoint: run it as lassnet-release")
    refuse_lassbench(payload, path)
    state = tensors_of(payload["state_dict"] if isinstance(payload.get("state_dict"), dict) else payload)
    if not any(k.startswith("ss_model.") for k in state):
        if any("audio_branch." in k for k in state) and any("text_branch." in k for k in state):
            raise LassbenchError(
                f"{path}: this is a CLAP encoder checkpoint (e.g. music_speech_audioset_epoch_15_esc_89.98.pt), not "
                f"an AudioSep separator: pass the separator's Lightning checkpoint (e.g. audiosep_base_4M_steps.ckpt)"
            )
        raise LassbenchError(f"{path}: no separator weights (ss_model.*) in this file")
    if not any(k.startswith(ROBERTA_PREFIX) for k in state):
        state.update(_clap_from_folder(folder, path))
    return state


def _clap_from_folder(folder: str | None, path: Path) -> dict[str, torch.Tensor]:
    """A separator saved without its CLAP half: AudioSep's pipeline builds CLAP from its own file
    (music_speech_audioset_epoch_15_esc_89.98.pt) before loading the separator, so take CLAP from that file when it
    sits in the --text-encoder folder."""
    files = sorted(Path(folder).glob("*.pt")) if folder else []
    if len(files) != 1:
        raise LassbenchError(
            f"{path}: no CLAP text branch (query_encoder.model.text_branch.*) in this file; put the CLAP checkpoint "
            f"(music_speech_audioset_epoch_15_esc_89.98.pt) alone beside the tokenizer in the --text-encoder folder"
        )
    payload = read_checkpoint_file(files[0])
    clap = tensors_of(payload["state_dict"] if isinstance(payload.get("state_dict"), dict) else payload)
    state = {"query_encoder.model." + k.removeprefix("module."): v for k, v in clap.items()}
    if not any(k.startswith(ROBERTA_PREFIX) for k in state):
        raise LassbenchError(f"{files[0]}: not a CLAP checkpoint (no text_branch.* weights)")
    return state


def _check_variant(state: dict[str, torch.Tensor], spec: PublishedSpec, path: Path) -> PublishedSpec:
    """The variant of ``spec`` these weights are (AudioSep-DP: 16 or 32 kHz, told by the STFT size), or one error
    line naming the system they belong to."""
    bins = int(state["ss_model.base.bn0.weight"].shape[0]) if "ss_model.base.bn0.weight" in state else None
    spec = next((v for v in VARIANTS.get(spec.name, ()) if v.n_fft // 2 + 1 == bins), spec)
    has_dprnn = dprnn_shape(state, DPRNN_PREFIX) is not None
    if bins is not None and bins != spec.n_fft // 2 + 1:
        n_fft = 2 * (bins - 1)
        variants = [v for s in PUBLISHED.values() for v in VARIANTS.get(s.name, (s,))]
        fits = sorted({v.name for v in variants if v.family == "resunet30" and v.n_fft == n_fft
                       and v.dprnn == has_dprnn})
        raise LassbenchError(
            f"{path}: these weights use a {n_fft}-point STFT ({bins} bins), {spec.name} needs {spec.n_fft} "
            f"({spec.sample_rate // 1000} kHz): wrong sample-rate variant" + (f"; run them as {' or '.join(fits)}"
                                                                            if fits else "")
        )
    if spec.dprnn and not has_dprnn:
        raise LassbenchError(f"{path}: no DPRNN weights (ss_model.base.DPRNN.*): not AudioSep-DP; run it as "
                             f"dcase2024-baseline or audiosep")
    if has_dprnn and not spec.dprnn:
        raise LassbenchError(f"{path}: these weights include a DPRNN (AudioSep-DP): run them as audiosep-dp")
    return spec


def _text_model(state: dict[str, torch.Tensor], prefix: str, kind: str, path: Path) -> nn.Module:
    """bert-mini / RoBERTa built from the shapes in the checkpoint (heads = hidden / 64, as in both releases)."""
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

    embedding = state.get(f"{prefix}embeddings.word_embeddings.weight")
    if embedding is None:
        raise LassbenchError(f"{path}: no text encoder weights ({prefix}*) in this file")
    layers = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"encoder\.layer\.(\d+)\.", k))}
    hidden = int(embedding.shape[1])

    def rows(key: str) -> int:
        if prefix + key not in state:
            raise LassbenchError(f"{path}: weight {prefix + key} missing (the text encoder cannot be rebuilt)")
        return int(state[prefix + key].shape[0])

    common = dict(
        vocab_size=int(embedding.shape[0]), hidden_size=hidden, num_hidden_layers=len(layers),
        num_attention_heads=max(1, hidden // 64), intermediate_size=rows("encoder.layer.0.intermediate.dense.weight"),
        max_position_embeddings=rows("embeddings.position_embeddings.weight"),
        type_vocab_size=rows("embeddings.token_type_embeddings.weight"),
    )
    if kind == "bert":
        return BertModel(BertConfig(**common, layer_norm_eps=1e-12), add_pooling_layer=False).eval()
    config = RobertaConfig(**common, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    return RobertaModel(config, add_pooling_layer=True).eval()


def _build_lassnet(bert: nn.Module) -> nn.Module:
    from lassbench.models.published.lassnet_release import ReleasedLASSNet

    return ReleasedLASSNet(bert)


