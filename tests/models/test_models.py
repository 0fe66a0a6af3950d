"""Model zoo: text encoders, the ResUNet + FiLM backbone, references, checkpoints."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from lassbench.errors import LassbenchError
from lassbench.models.lassnet import QueryBatch, SeparatorConfig, sized_config
from lassbench.models.registry import (
    MODELS,
    build_model,
    count_parameters,
    half_precision_copy,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from lassbench.models.resunet import BackboneConfig, ConditionedResUNet
from lassbench.models.text_encoders import load_text_encoder

SR = 16000


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder("minilm")


def _small_config(**kw) -> SeparatorConfig:
    config = sized_config("tiny", **kw)
    config.backbone = BackboneConfig(channels=[4, 8], cond_dim=16)
    return config


def test_minilm_loads_offline_from_the_package_and_ranks_similar_captions_closer(minilm):
    vectors = minilm.encode(["a dog barks", "a puppy is barking", "a car engine revs"])
    vectors = torch.nn.functional.normalize(vectors, dim=-1)
    assert vectors.shape == (3, 384)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.3


def test_frozen_encoder_caches_one_embedding_per_unique_query(minilm):
    minilm.clear_cache()
    minilm.encode(["a bell rings", "a bell rings", "wind blows"])
    assert len(minilm._cache) == 2


def test_empty_query_is_an_error(minilm):
    with pytest.raises(LassbenchError, match="empty query"):
        minilm.encode(["  "])


def test_query_longer_than_the_tokenizer_limit_is_truncated_with_a_warning(minilm, caplog):
    long_query = "a dog barks " * 400
    with caplog.at_level("WARNING"):
        vector = minilm.encode([long_query])
    assert vector.shape == (1, 384) and torch.isfinite(vector).all()
    assert "truncated" in caplog.text


def test_hub_text_encoder_offline_fails_with_one_line_saying_how_to_provide_weights(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LassbenchError, match="--text-encoder DIR"):
        load_text_encoder("bert-mini")


def test_local_folder_text_encoder_loads(minilm, tmp_path):
    minilm.model.save_pretrained(tmp_path)
    minilm.tokenizer.save_pretrained(tmp_path)
    encoder = load_text_encoder(str(tmp_path))
    assert torch.allclose(encoder.encode(["rain"]), minilm.encode(["rain"]), atol=1e-5)


def test_backbone_returns_a_waveform_of_the_input_length_for_odd_lengths():
    net = ConditionedResUNet(BackboneConfig(channels=[4, 8], cond_dim=16))
    for length in (SR, SR + 123):
        out = net(torch.randn(2, length), torch.randn(2, 16))
        assert out.shape == (2, length) and torch.isfinite(out).all()


def test_mask_is_between_zero_and_one_so_the_estimate_never_exceeds_the_mixture_magnitude():
    net = ConditionedResUNet(BackboneConfig(channels=[4, 8], cond_dim=16))
    mixture = torch.randn(1, SR)
    spec = net.stft(mixture)
    mask = net.mask(spec.abs(), torch.randn(1, 16) * 10)
    assert mask.min() >= 0 and mask.max() <= 1
    estimate = net(mixture, torch.randn(1, 16))
    assert float((estimate**2).sum()) <= float((mixture**2).sum()) * 1.05


def test_film_makes_the_output_depend_on_the_condition():
    net = ConditionedResUNet(BackboneConfig(channels=[4, 8], cond_dim=16))
    for p in net.parameters():  # FiLM starts at identity; perturb it so the condition matters
        torch.nn.init.normal_(p, std=0.3) if p.dim() > 1 else None
    mixture = torch.randn(1, SR)
    a = net(mixture, torch.randn(1, 16))
    b = net(mixture, torch.randn(1, 16))
    assert not torch.allclose(a, b)


def test_mixture_reference_returns_its_input_exactly():
    model = build_model("mixture")
    mixture = torch.randn(3, SR)
    assert torch.equal(model(mixture, QueryBatch(["x"] * 3)), mixture)


@pytest.mark.parametrize("name", ["oracle-irm", "oracle-ibm"])
def test_oracle_masks_recover_an_isolated_target_nearly_perfectly(name):
    model = build_model(name)
    target = torch.randn(1, SR)
    silence_interferer = target.clone()
    estimate = model(silence_interferer, QueryBatch(["x"], targets=target))
    assert torch.allclose(estimate, target, atol=1e-4)


def test_oracle_without_reference_is_an_error():
    with pytest.raises(LassbenchError, match="reference"):
        build_model("oracle-irm")(torch.randn(1, SR), QueryBatch(["x"]))


def test_tag_queried_model_queries_with_label_words(minilm):
    model = build_model("tag-queried", _small_config(), attach_encoder=False)
    model.attach_text_encoder(minilm)
    assert model.queries_of(QueryBatch(["ignored"], labels=[["Alarm", "Beep"]])) == ["Alarm, Beep"]


def test_class_conditioned_model_rejects_an_unknown_class():
    model = build_model("class-conditioned", _small_config(classes=["Alarm", "Bell"]))
    out = model(torch.randn(1, SR), QueryBatch(["x"], labels=[["Bell"]]))
    assert out.shape == (1, SR)
    with pytest.raises(LassbenchError, match="knows classes"):
        model(torch.randn(1, SR), QueryBatch(["x"], labels=[["Dog"]]))


def test_checkpoint_round_trip_rebuilds_the_same_model(tmp_path):
    config = _small_config()
    model = build_model("lassnet", config)
    path = save_checkpoint(tmp_path / "m.pt", model, name="lassnet", config=config, step=7)
    loaded, payload = load_model(path, expected="lassnet")
    assert payload["step"] == 7
    mixture = torch.randn(1, SR)
    batch = QueryBatch(["a bell rings"])
    assert torch.allclose(model.eval()(mixture, batch), loaded(mixture, batch), atol=1e-6)
    assert not any(k.startswith("text_encoder.") for k in payload["state_dict"])  # frozen encoder not saved


def test_half_precision_copy_halves_the_file_and_barely_moves_the_estimate(tmp_path):
    config = sized_config("tiny")
    torch.manual_seed(0)
    model = build_model("lassnet", config)
    full = save_checkpoint(tmp_path / "full.pt", model, name="lassnet", config=config, step=3)
    half = half_precision_copy(full, tmp_path / "half.pt")
    assert half.stat().st_size < 0.6 * full.stat().st_size
    assert {v.dtype for v in read_checkpoint(half)["state_dict"].values() if v.is_floating_point()} == {torch.float16}
    loaded, payload = load_model(half, expected="lassnet")
    assert payload["step"] == 3 and next(loaded.parameters()).dtype == torch.float32
    mixture, batch = torch.randn(1, SR), QueryBatch(["a dog barks twice"])
    reference = model.eval()(mixture, batch)
    error = 10 * torch.log10(reference.pow(2).sum() / (reference - loaded(mixture, batch)).pow(2).sum())
    assert error > 60  # the rounding error sits 60 dB below the estimate (87 dB here; 61 dB on a trained model)


def test_checkpoint_of_another_model_is_refused(tmp_path):
    config = _small_config(classes=["Alarm"])
    path = save_checkpoint(tmp_path / "c.pt", build_model("class-conditioned", config), name="class-conditioned",
                           config=config)
    with pytest.raises(LassbenchError, match="not 'lassnet'"):
        load_model(path, expected="lassnet")


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(LassbenchError, match="not a readable lassbench checkpoint"):
        read_checkpoint(path)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(LassbenchError, match="lassnet"):
        build_model("nonexistent")


def test_base_configuration_has_the_release_sizes_and_reports_its_size():
    config = sized_config("base")
    assert config.backbone.channels == [32, 64, 128, 256, 384, 384]
    assert (config.backbone.n_fft, config.backbone.hop, config.backbone.sample_rate) == (1024, 512, 32000)
    net = ConditionedResUNet(config.backbone)
    params = count_parameters(net)
    assert 10_000_000 < params < 60_000_000


def test_every_registered_model_has_a_query_type():
    assert {e.query_type for e in MODELS.values()} <= {"caption", "tags", "class-id", "none", "oracle"}


def test_models_command_lists_the_zoo():
    result = subprocess.run([sys.executable, "-m", "lassbench", "models"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for name in MODELS:
        assert name in result.stdout


def test_listing_the_zoo_imports_neither_torch_nor_transformers():
    code = ("import sys; from lassbench.cli import main\n"
            "try:\n    main(['models'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert all(name in result.stdout for name in MODELS)


def test_the_zoo_catalogue_and_the_registry_name_the_same_models():
    from lassbench.models.zoo import ZOO

    assert list(ZOO) == list(MODELS)
    assert all(ZOO[n].query_type == MODELS[n].query_type and ZOO[n].published == (MODELS[n].published is not None)
               for n in ZOO)


def test_parameter_counts_are_listed_on_request():
    result = subprocess.run([sys.executable, "-m", "lassbench", "models", "--params"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["model", "query", "params"]
    counts = {row.split()[0]: int(row.split()[2].replace(",", "")) for row in rows}
    assert counts["lassnet"] > 100_000 and counts["mixture"] == 0


def test_unknown_model_on_the_cli_is_one_line_and_nonzero(tmp_path):
    result = subprocess.run([sys.executable, "-m", "lassbench", "run", "nope", "--data", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_separate_streams_a_long_file_at_another_rate_into_the_same_duration(tmp_path, minilm):
    from lassbench.audio import read_audio, write_audio
    from lassbench.separate import SeparateConfig, separate_file

    config = _small_config()
    model = build_model("lassnet", config)
    ckpt = save_checkpoint(tmp_path / "m.pt", model, name="lassnet", config=config)
    rate = 22050
    mixture = np.random.default_rng(0).standard_normal(rate * 25).astype(np.float32) * 0.1
    write_audio(tmp_path / "mix.wav", mixture, rate)
    out = separate_file(SeparateConfig(input=str(tmp_path / "mix.wav"), output=str(tmp_path / "est.wav"),
                                       query="rain falls", checkpoint=str(ckpt), chunk_seconds=4.0,
                                       overlap_seconds=0.5))
    estimate, sr = read_audio(out)
    assert sr == rate and abs(len(estimate) - len(mixture)) <= 2
    assert np.isfinite(estimate).all()


def test_overlap_add_of_the_identity_reconstructs_the_input_exactly():
    from lassbench.separate import overlap_add

    signal = np.random.default_rng(1).standard_normal(10_000).astype(np.float32)
    blocks = (signal[i:i + 777] for i in range(0, len(signal), 777))
    pieces = [p for p, _ in overlap_add(blocks, lambda x: x.copy(), chunk=1000, overlap=200)]
    assert np.allclose(np.concatenate(pieces), signal, atol=1e-6)


@pytest.mark.parametrize("config, phrase", [({}, "weights do not fit"), ({"bogus": 1}, "config not understood")])
def test_a_malformed_checkpoint_is_one_error_line(tmp_path, config, phrase):
    from lassbench.errors import LassbenchError
    from lassbench.models.registry import load_model

    path = tmp_path / "bad.pt"
    torch.save({"model": "lassnet", "config": config, "state_dict": {}}, path)
    with pytest.raises(LassbenchError, match=phrase) as raised:
        load_model(path, expected="lassnet")
    assert "\n" not in str(raised.value)
