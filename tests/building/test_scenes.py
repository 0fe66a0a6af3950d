"""Soundscape items (`build-dataset --scenes`): events at overlapping onsets over a looped real background, each
item's event spec stored with it and enough to regenerate its mixture bit-exactly."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from lassbench.audio import write_audio
from lassbench.cli import main as cli_main
from lassbench.corpora import load_sources
from lassbench.manifests import SOURCE_COLUMNS, encode_list, read_item_manifest, read_source_manifest
from lassbench.mixing import regenerate_scene
from lassbench.scenes import Scene

RATE = 16000


def _clip(seconds_on: float, offset: float, freq: float, seed: int, noise: bool = False) -> np.ndarray:
    clip = np.zeros(10 * RATE, dtype=np.float32)
    t = np.arange(int(seconds_on * RATE)) / RATE
    rng = np.random.default_rng(seed)
    sound = rng.normal(0, 0.1, t.shape) if noise else 0.3 * np.sin(2 * np.pi * freq * t) * np.exp(-3 * t)
    start = int(offset * RATE)
    clip[start:start + t.size] = sound
    return clip


@pytest.fixture()
def corpus(tmp_path):
    """Events in silence (bird, bell, dog, two of each) and two 4 s ambience loops (water, rain), as in the real
    corpus."""
    rows = []
    specs = [(f"{name}{k}", label, 0.8, 2.0 + 3 * k, freq, False)
             for name, label, freq in (("bird", "Bird", 2500), ("bell", "Bell", 900), ("dog", "Dog", 400))
             for k in range(2)]
    specs += [(name, label, 4.0, 1.5, 0, True) for name, label in (("water0", "Water"), ("rain0", "Rain"))]
    for n, (source_id, label, on, offset, freq, noise) in enumerate(specs):
        path = tmp_path / "audio" / f"{source_id}.wav"
        write_audio(path, _clip(on, offset, freq, n, noise), RATE)
        rows.append({"source_id": source_id, "path": f"audio/{source_id}.wav", "captions": encode_list([label]),
                     "labels": encode_list([label]), "split": "test", "sample_rate": RATE,
                     "num_samples": 10 * RATE, "duration": 10.0, "sha1": ""})
    pd.DataFrame(rows, columns=SOURCE_COLUMNS).to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path


def _build(corpus, out, *extra):
    cli_main(["build-dataset", "--sources", str(corpus), "--out", str(out), "--splits", "test", "--num-items", "6",
              "--max-interferers", "1", "--seed", "0", "--quiet", *extra])
    return read_item_manifest(out / "manifest.csv")


def test_a_scene_items_mixture_regenerates_bit_exactly_from_its_stored_event_spec(corpus, tmp_path):
    items = _build(corpus, tmp_path / "bench", "--scenes")
    sources = read_source_manifest(corpus / "manifest.csv")
    loaded = load_sources(sources, RATE)
    for row in items.to_dict("records"):
        again = regenerate_scene(row["scene"], loaded.audio, loaded.loudness)  # the spec alone
        path = write_audio(tmp_path / "again" / f"{row['id']}.wav", again.mixture, RATE, subtype="FLOAT")
        assert hashlib.sha1(path.read_bytes()).hexdigest() == row["mixture_sha1"]


def test_scene_events_overlap_the_target_over_a_background_that_fills_the_scene(corpus, tmp_path):
    items = _build(corpus, tmp_path / "bench", "--scenes")
    for row in items.to_dict("records"):
        scene = Scene.from_json(row["scene"])
        roles = [e.role for e in scene.events]
        assert roles == ["target", "interferer", "background"] and row["interferer_ids"][-1] in ("water0", "rain0")
        assert row["interferer_ids"][-1] != row["target_id"]
        target, interferer, background = scene.events
        assert interferer.event_time < target.event_time + target.event_duration
        assert target.event_time < interferer.event_time + interferer.event_duration  # they overlap in time
        assert background.event_time == 0 and background.event_duration == 10.0 and background.source_duration < 5
    mixture = items["mixture_path"].iloc[0]
    import soundfile as sf
    audio, _ = sf.read(tmp_path / "bench" / mixture)
    assert np.mean(np.abs(audio) > 1e-4) > 0.95  # the looped background sounds all through the scene


def test_without_scenes_the_items_and_parameters_are_those_of_the_plain_protocol(corpus, tmp_path):
    _build(corpus, tmp_path / "bench", "--scenes")
    plain = _build(corpus, tmp_path / "plain")
    assert "scene" not in plain or plain["scene"].isna().all()
    parameters = json.loads((tmp_path / "plain" / "dataset.json").read_text())["parameters"]
    assert not {"scenes", "background_labels"} & set(parameters)  # a plain build's fingerprint is as it was
    scenes = json.loads((tmp_path / "bench" / "dataset.json").read_text())["parameters"]
    assert scenes["scenes"] is True and "Water" in scenes["background_labels"]


def test_a_split_without_an_ambience_is_one_clear_error(corpus, tmp_path, capsys):
    frame = pd.read_csv(corpus / "manifest.csv")
    frame[~frame["source_id"].isin(["water0", "rain0"])].to_csv(corpus / "manifest.csv", index=False)
    with pytest.raises(SystemExit):
        _build(corpus, tmp_path / "bench", "--scenes")
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --scenes: split 'test' has no background clip")
