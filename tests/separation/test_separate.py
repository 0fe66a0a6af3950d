"""`lassbench separate` on bad and unusual inputs: refused before the model loads, or handled and said out loud."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import lassbench.separate as separate_module
from lassbench.audio import read_audio, write_audio
from lassbench.errors import LassbenchError
from lassbench.separate import OUTPUT_FORMATS, SeparateConfig, Separator, load_separator, separate_file

from support.separator_stubs import IdentityModel

RATE = 16000


def _noise(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(RATE * seconds)) * 0.1).astype(np.float32)


@pytest.fixture()
def mixture(tmp_path) -> Path:
    return write_audio(tmp_path / "mix.wav", _noise(), RATE)


def _truncated_wav(folder: Path) -> Path:
    data = write_audio(folder / "full.wav", _noise(), RATE).read_bytes()
    path = folder / "cut.wav"
    path.write_bytes(data[: len(data) // 2])  # header still declares every frame
    return path


def _truncated_flac(folder: Path) -> Path:
    sf.write(folder / "full.flac", _noise(), RATE)
    data = (folder / "full.flac").read_bytes()
    (folder / "cut.flac").write_bytes(data[: len(data) // 2])
    return folder / "cut.flac"


def _with_bad_sample(folder: Path, value: float) -> Path:
    x = _noise()
    x[RATE // 2] = value
    return write_audio(folder / "bad.wav", x, RATE)


def _empty(folder: Path) -> Path:
    return write_audio(folder / "empty.wav", np.zeros(0, dtype=np.float32), RATE)


def _not_audio(folder: Path) -> Path:
    (folder / "notes.wav").write_text("not audio")
    return folder / "notes.wav"


def _symlink_to(folder: Path, target: Path) -> Path:
    (folder / "link.wav").symlink_to(target)
    return folder / "link.wav"


def _hardlink_to(folder: Path, target: Path) -> Path:
    os.link(target, folder / "hard.wav")
    return folder / "hard.wav"


# (case, make input (folder, mixture) -> path, make output (folder, input) -> path, config changes, error pattern)
BAD_INPUTS = [
    ("missing input", lambda d, m: d / "nope.wav", lambda d, i: d / "o.wav", {}, "nope.wav: no such file"),
    ("input is a folder", lambda d, m: d, lambda d, i: d / "o.wav", {}, "not a file"),
    ("input is not audio", lambda d, m: _not_audio(d), lambda d, i: d / "o.wav", {}, "notes.wav: cannot read audio"),
    ("0-sample wav", lambda d, m: _empty(d), lambda d, i: d / "o.wav", {}, "empty.wav: holds no samples"),
    ("truncated wav", lambda d, m: _truncated_wav(d), lambda d, i: d / "o.wav", {}, "cut.wav: truncated"),
    ("truncated flac", lambda d, m: _truncated_flac(d), lambda d, i: d / "o.wav", {}, "cut.flac: .*truncated"),
    ("a NaN sample", lambda d, m: _with_bad_sample(d, np.nan), lambda d, i: d / "o.wav", {},
     r"bad.wav: holds NaN or infinite samples \(first at 0.500 s\)"),
    ("an Inf sample", lambda d, m: _with_bad_sample(d, np.inf), lambda d, i: d / "o.wav", {}, "bad.wav: holds NaN"),
    ("output is the input", lambda d, m: m, lambda d, i: i, {}, "the output is the input"),
    ("output spells the input otherwise", lambda d, m: m, lambda d, i: d / "sub" / ".." / i.name, {},
     "the output is the input"),
    ("output is a symlink to the input", lambda d, m: m, lambda d, i: _symlink_to(d, i), {}, "the output is the input"),
    ("output is a hard link to the input", lambda d, m: m, lambda d, i: _hardlink_to(d, i), {},
     "the output is the input"),
    ("unknown output extension", lambda d, m: m, lambda d, i: d / "o.xyz", {}, r"'\.xyz' audio: use one of \.wav, "),
    ("no output extension", lambda d, m: m, lambda d, i: d / "estimate", {}, r"\(no extension\)"),
    ("output is a folder", lambda d, m: m, lambda d, i: d / "dir.wav", {}, "is a folder"),
    ("output under a file", lambda d, m: m, lambda d, i: i / "o.wav", {}, "is not a folder"),
    ("empty query", lambda d, m: m, lambda d, i: d / "o.wav", {"query": "  "}, "empty query"),
    ("non-UTF-8 query", lambda d, m: m, lambda d, i: d / "o.wav", {"query": "caf\udce9"}, "not UTF-8 text"),
    ("zero chunk", lambda d, m: m, lambda d, i: d / "o.wav", {"chunk_seconds": 0.0}, "--chunk must be a positive"),
    ("endless chunk", lambda d, m: m, lambda d, i: d / "o.wav", {"chunk_seconds": 1e9}, "s is too long: at most"),
    ("NaN chunk", lambda d, m: m, lambda d, i: d / "o.wav", {"chunk_seconds": float("nan")}, "--chunk must be"),
    ("tiny chunk", lambda d, m: m, lambda d, i: d / "o.wav", {"chunk_seconds": 1e-9, "overlap_seconds": 0.0},
     "too short"),
    ("overlap a hair under the chunk", lambda d, m: m, lambda d, i: d / "o.wav",
     {"chunk_seconds": 1.00001, "overlap_seconds": 1.0}, "--overlap must be"),
    ("overlap as long as the chunk", lambda d, m: m, lambda d, i: d / "o.wav", {"overlap_seconds": 10.0},
     "--overlap must be"),
    ("unknown model", lambda d, m: m, lambda d, i: d / "o.wav", {"model": "nope"}, "unknown model 'nope'"),
    ("model without text queries", lambda d, m: m, lambda d, i: d / "o.wav", {"model": "mixture"},
     "cannot take a text query"),
    ("missing checkpoint", lambda d, m: m, lambda d, i: d / "o.wav", {"checkpoint": "nope.pt"}, "checkpoint not found"),
    ("unknown device", lambda d, m: m, lambda d, i: d / "o.wav", {"device": "banana"}, "unknown --device 'banana'"),
]


@pytest.mark.parametrize("case, make_input, make_output, changes, pattern", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_before_the_model_loads_and_nothing_is_overwritten(
        tmp_path, mixture, monkeypatch, case, make_input, make_output, changes, pattern):
    (tmp_path / "dir.wav").mkdir()
    (tmp_path / "o.wav").write_bytes(b"the user's earlier estimate")
    monkeypatch.setattr(separate_module, "load_separator", _must_not_load)
    source = make_input(tmp_path, mixture)
    output = make_output(tmp_path, source)
    before = _snapshot(tmp_path)
    config = SeparateConfig(input=str(source), output=str(output), query="a dog barks")
    for key, value in changes.items():
        setattr(config, key, value)
    with pytest.raises(LassbenchError, match=pattern):
        separate_file(config)
    assert _snapshot(tmp_path) == before  # nothing overwritten, no temp file left


def _must_not_load(*args, **kwargs):
    raise AssertionError("the model was loaded before the input was refused")


def _snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_cuda_on_a_machine_without_cuda_is_refused(mixture, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(LassbenchError, match="no CUDA GPU"):
        separate_file(SeparateConfig(input=str(mixture), output=str(tmp_path / "o.wav"), query="x", device="cuda"))


def test_cli_refusal_is_one_error_line_exit_2_and_imports_no_torch(tmp_path):
    # the check that the input exists runs before torch is imported: a typo fails in a fraction of a second
    script = ("import sys\nfrom lassbench.cli import main\ntry:\n    main(sys.argv[1:])\nfinally:\n"
              "    print('torch imported' if 'torch' in sys.modules else 'no torch', file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", script, "separate", "--input", str(tmp_path / "typo.wav"),
                             "--query", "a dog", "--output", str(tmp_path / "o.wav")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {tmp_path / 'typo.wav'}: no such file", "no torch"]


def test_cli_refuses_a_query_that_is_not_utf8_in_one_line(mixture, tmp_path):
    result = subprocess.run([sys.executable.encode(), b"-m", b"lassbench", b"separate", b"--input", bytes(mixture),
                             b"--query", b"caf\xe9", b"--output", bytes(tmp_path / "o.wav")], capture_output=True)
    assert result.returncode == 2 and result.stderr.decode().startswith("error: the query is not UTF-8 text")
    assert len(result.stderr.splitlines()) == 1


def test_cli_refuses_an_output_that_is_the_input_and_keeps_the_mixture(mixture):
    before = mixture.read_bytes()
    result = subprocess.run([sys.executable, "-m", "lassbench", "separate", "--input", str(mixture), "--query", "x",
                             "--output", str(mixture.parent / "." / mixture.name)], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert mixture.read_bytes() == before


def test_every_supported_extension_is_listed_by_libsndfile():
    assert {".wav", ".flac", ".ogg"} <= set(OUTPUT_FORMATS)
    for fmt, subtype in OUTPUT_FORMATS.values():
        assert sf.check_format(fmt, subtype)


# ---------------------------------------------------------------------------------------------------- with a model


@pytest.fixture()
def identity(monkeypatch):
    separator = Separator(IdentityModel(), "lassnet", "caption")
    monkeypatch.setattr(separate_module, "load_separator", lambda *a, **k: separator)
    return separator


@pytest.mark.parametrize("extension, fmt", [(".wav", "WAV"), (".flac", "FLAC"), (".ogg", "OGG"), (".aiff", "AIFF")])
def test_output_format_follows_the_extension(tmp_path, mixture, identity, extension, fmt):
    out = separate_file(SeparateConfig(input=str(mixture), output=str(tmp_path / f"est{extension}"), query="x"))
    info = sf.info(str(out))
    assert info.format == fmt and info.samplerate == RATE and abs(info.frames - RATE) <= 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_stereo_input_gives_a_stereo_estimate_with_each_channel_separated(tmp_path, identity):
    stereo = np.stack([_noise(seed=1), _noise(seed=2) * 0.3])  # channels that differ in content and level
    write_audio(tmp_path / "stereo.wav", stereo, RATE)
    out = separate_file(SeparateConfig(input=str(tmp_path / "stereo.wav"), output=str(tmp_path / "est.wav"),
                                       query="x"))
    estimate, _ = read_audio(out, mono=False)
    assert estimate.shape == stereo.shape
    np.testing.assert_allclose(estimate, stereo, atol=2e-3)  # identity model: each channel comes back as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["est.wav", "stereo.wav"]  # no work files left


def test_stereo_flac_output_is_clipped_once_and_reported(tmp_path, identity):
    write_audio(tmp_path / "loud.wav", np.stack([_noise() * 30, _noise(seed=3)]), RATE)
    notes = []
    out = separate_file(SeparateConfig(input=str(tmp_path / "loud.wav"), output=str(tmp_path / "est.flac"),
                                       query="x"), log=notes.append)
    assert sf.info(str(out)).channels == 2
    assert len(notes) == 1 and "were clipped" in notes[0] and str(out) in notes[0]


def test_samples_beyond_full_scale_are_clipped_in_flac_and_reported(tmp_path, identity):
    write_audio(tmp_path / "loud.wav", _noise() * 50, RATE)  # float WAV far above full scale
    notes = []
    out = separate_file(SeparateConfig(input=str(tmp_path / "loud.wav"), output=str(tmp_path / "est.flac"),
                                       query="x"), log=notes.append)
    estimate, _ = read_audio(out)
    assert np.abs(estimate).max() <= 1.0 and np.abs(estimate).max() > 0.99  # clipped, not wrapped around
    assert len(notes) == 1 and "exceeded full scale and were clipped" in notes[0]


class _LevelDependentModel(IdentityModel):
    """A mask that depends on the absolute level, like a network fed log-magnitudes: not scale-equivariant alone."""

    def __call__(self, mixture, batch):
        return mixture * (1 / (1 + (mixture.abs() * 10) ** 2))


@pytest.mark.parametrize("gain", [4.0, 100.0])
def test_a_level_dependent_model_separates_a_louder_file_as_the_same_file_scaled(tmp_path, monkeypatch, gain):
    separator = Separator(_LevelDependentModel(), "lassnet", "caption")
    monkeypatch.setattr(separate_module, "load_separator", lambda *a, **k: separator)
    x = _noise(2.0)
    estimates = []
    for g in (1.0, gain):
        write_audio(tmp_path / "mix.wav", x * np.float32(g), RATE)
        separate_file(SeparateConfig(input=str(tmp_path / "mix.wav"), output=str(tmp_path / "est.wav"), query="x"))
        estimates.append(read_audio(tmp_path / "est.wav")[0] / g)
    assert np.abs(estimates[0] - x).max() > 0.01  # the model does change the signal
    np.testing.assert_allclose(estimates[1], estimates[0], rtol=0, atol=1e-5 * np.abs(estimates[0]).max())


def test_long_input_shows_a_progress_bar_on_stderr(tmp_path, capsys):
    write_audio(tmp_path / "long.wav", np.zeros(RATE * 40, dtype=np.float32), RATE)
    separate_module.scan_input(tmp_path / "long.wav", progress=True)
    assert "checking" in capsys.readouterr().err


def test_silent_input_separates_to_silence_without_dividing_by_zero(tmp_path, identity):
    write_audio(tmp_path / "silence.wav", np.zeros(RATE, dtype=np.float32), RATE)
    out = separate_file(SeparateConfig(input=str(tmp_path / "silence.wav"), output=str(tmp_path / "e.wav"), query="x"))
    assert np.array_equal(read_audio(out)[0], np.zeros(RATE, dtype=np.float32))


# ---------------------------------------------------------------------------------------------------- shipped model


@pytest.fixture(scope="module")
def shipped():
    if separate_module.text_model_entry("lassnet").shipped_checkpoint() is None:
        pytest.skip("no shipped lassnet checkpoint")
    return load_separator("lassnet")


def _scene(seconds: float = 2.0) -> np.ndarray:
    """A beeping tone over noise: something for the shipped model to work on."""
    t = np.arange(int(RATE * seconds)) / RATE
    beeps = np.sin(2 * np.pi * 1000 * t) * (np.sin(2 * np.pi * 4 * t) > 0)
    return (0.3 * beeps + 0.05 * np.random.default_rng(3).standard_normal(len(t))).astype(np.float32)


@pytest.mark.slow
def test_shipped_model_is_scale_equivariant_at_gains_1_4_and_100(shipped):
    mixture = _scene()
    base = shipped.separate(mixture, RATE, "a high-pitched alarm beeps")
    assert np.abs(base).max() > 1e-3
    for gain in (4.0, 100.0):
        louder = shipped.separate(mixture * np.float32(gain), RATE, "a high-pitched alarm beeps")
        np.testing.assert_allclose(louder / gain, base, rtol=0, atol=1e-4 * np.abs(base).max())


@pytest.mark.slow
def test_shipped_model_separates_a_loud_file_like_the_same_file_at_normal_level(shipped, tmp_path, monkeypatch):
    monkeypatch.setattr(separate_module, "load_separator", lambda *a, **k: shipped)
    mixture = _scene()
    estimates = {}
    for gain in (1.0, 100.0):
        write_audio(tmp_path / f"mix{gain:g}.wav", mixture * np.float32(gain), RATE)
        out = separate_file(SeparateConfig(input=str(tmp_path / f"mix{gain:g}.wav"),
                                           output=str(tmp_path / f"est{gain:g}.wav"), query="an alarm beeps"))
        estimates[gain] = read_audio(out)[0] / gain
    np.testing.assert_allclose(estimates[100.0], estimates[1.0], rtol=0, atol=1e-4 * np.abs(estimates[1.0]).max())


def test_an_n_by_channels_array_is_refused_with_the_fix(identity):
    stereo = np.random.default_rng(0).normal(size=(RATE, 2)).astype(np.float32) * 0.1  # what soundfile.read gives
    with pytest.raises(LassbenchError, match=r"\(n, channels\)"):
        identity.separate(stereo, RATE, "a dog barks")
    assert identity.separate(stereo.T, RATE, "a dog barks").shape == (2, RATE)  # each channel separated


def test_class_conditioned_takes_a_class_name_and_lists_its_classes_for_anything_else(tmp_path, mixture):
    if separate_module.text_model_entry("class-conditioned").shipped_checkpoint() is None:
        pytest.skip("no shipped class-conditioned checkpoint")
    config = SeparateConfig(input=str(mixture), output=str(tmp_path / "est.wav"), model="class-conditioned",
                            query="a dog barks")
    with pytest.raises(LassbenchError, match=r"takes a class name as the query.*give --query one of: .*Dog"):
        separate_file(config)
    assert not (tmp_path / "est.wav").exists()
    config.query = "Dog"
    assert sf.info(str(separate_file(config))).frames == RATE


def test_tags_a_tag_queried_checkpoint_never_saw_are_refused_with_the_tags_it_knows():
    tags = ["Dog", "Livestock, farm animals, working animals", "Rain"]
    separator = Separator(IdentityModel(), "tag-queried", "tags", tags=tags)
    x = np.zeros(RATE, dtype=np.float32)
    for known in ("Dog", "Rain, Dog", "Livestock, farm animals, working animals"):  # a tag may hold commas
        assert separator.separate(x, RATE, known).shape == x.shape
    with pytest.raises(LassbenchError, match=r"never trained on the tag\(s\) 'Cat'.*Dog; Livestock"):
        separator.separate(x, RATE, "Dog, Cat")


def test_a_tag_queried_checkpoint_without_its_tags_says_queries_are_not_checked(tmp_path, capsys):
    shipped = separate_module.text_model_entry("tag-queried").shipped_checkpoint()
    if shipped is None:
        pytest.skip("no shipped tag-queried checkpoint")
    payload = torch.load(shipped, map_location="cpu", weights_only=False)
    payload.pop("tags", None)  # as checkpoints trained before tags were recorded
    older = tmp_path / "older-tag-queried.pt"
    torch.save(payload, older)
    assert load_separator("tag-queried", older).tags is None
    assert capsys.readouterr().err.strip() == (
        "note: older-tag-queried.pt does not record the tags it was trained on, so tag queries are not checked")
    assert load_separator("tag-queried").tags  # the shipped one records them
