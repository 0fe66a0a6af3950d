"""A tiny seeded ClapModel saved as a checkpoint folder, for CLAPScore and FAD without a download."""

from __future__ import annotations

import json
from pathlib import Path

WORDS = ["a", "dog", "barks", "car", "engine", "revs", "bird", "sings", "rain", "falls", "the", "sound", "of"]


def make_tiny_clap(folder: Path, seed: int = 0, window_s: int = 1, fused: bool = False) -> Path:
    """A ClapModel with 16-dim embeddings, a RoBERTa tokenizer over a tiny vocabulary, and a 48 kHz extractor
    with ``window_s``-second windows, saved with save_pretrained (what a downloaded checkpoint folder holds)."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for token in [*WORDS, *("\u0120" + w for w in WORDS), *"abcdefghijklmnopqrstuvwxyz\u0120"]:
        vocab.setdefault(token, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = RobertaTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    config = ClapConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=37, max_position_embeddings=40, projection_dim=16),
        audio_config=dict(hidden_size=32, projection_dim=16, depths=[1, 1], num_attention_heads=[1, 2],
                          patch_embeds_hidden_size=16, window_size=8, spec_size=64, num_mel_bins=16,
                          enable_fusion=fused, fusion_type="aff_2d" if fused else None),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    ClapModel(config).eval().save_pretrained(folder)
    extractor = ClapFeatureExtractor(feature_size=16, sampling_rate=48000, max_length_s=window_s, hop_length=480)
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
