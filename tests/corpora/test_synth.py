import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from lassbench.audio import read_audio
from lassbench.corpora.synth import cache, generate_clip, synth_classes, synth_corpus
from lassbench.corpora.synth.captions import PITCH_A, TEMPO_ADJ_A
from lassbench.errors import LassbenchError
from lassbench.manifests import SOURCE_COLUMNS, read_source_manifest

CLIPS = {"train": 28, "val": 28, "test": 28}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return read_source_manifest(synth_corpus(tmp_path_factory.mktemp("synth") / "c", clips=CLIPS))


def test_manifest_has_the_source_schema_and_synth_columns(corpus):
    assert set(SOURCE_COLUMNS) <= set(corpus.columns)
    assert {"attributes", "paraphrases", "class_id"} <= set(corpus.columns)
    assert corpus["split"].value_counts().to_dict() == CLIPS
    assert corpus["source_id"].is_unique


def test_at_least_twelve_classes_each_labelled_by_its_display_name(corpus):
    classes = synth_classes()
    assert len(classes) >= 12 and len(set(classes)) == len(classes)
    for labels, class_id in zip(corpus["labels"], corpus["class_id"], strict=True):
        assert labels[0] == classes[int(class_id)]


def test_same_arguments_give_identical_audio(tmp_path):
    first = synth_corpus(tmp_path / "a", clips={"val": 14})
    second = synth_corpus(tmp_path / "b", clips={"val": 14})
    assert pd.read_csv(first)["sha1"].tolist() == pd.read_csv(second)["sha1"].tolist()


def test_generation_shows_a_progress_bar_counting_clips(tmp_path, capsys):
    synth_corpus(tmp_path / "c", duration=1.0, clips={"val": 3, "test": 2}, progress=True)
    err = capsys.readouterr().err
    assert "generating the synth corpus" in err and "0/5" in err  # counted in clips


def test_second_call_reuses_the_cached_corpus(tmp_path):
    manifest = synth_corpus(tmp_path / "c", clips={"val": 3})
    stamp = manifest.stat().st_mtime_ns
    assert synth_corpus(tmp_path / "c", clips={"val": 3}) == manifest
    assert manifest.stat().st_mtime_ns == stamp


def test_default_location_is_under_the_lassbench_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LASSBENCH_CACHE", str(tmp_path))
    manifest = synth_corpus(clips={"test": 2})
    assert manifest.is_relative_to(tmp_path / "synth")


def test_a_failed_generation_leaves_nothing_that_looks_finished(tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(cache, "_generate_into", explode)
    with pytest.raises(RuntimeError):
        synth_corpus(tmp_path / "c", clips={"val": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["c.lock"]  # the (released) generation lock only


def test_two_first_runs_generate_once_the_second_waits_and_reuses(tmp_path, monkeypatch):
    generated = []

    def slow(folder, **kwargs):
        generated.append(folder)
        time.sleep(0.5)  # the second run arrives while the first generates
        real(folder, **kwargs)

    real = cache._generate_into
    monkeypatch.setattr(cache, "_generate_into", slow)
    with ThreadPoolExecutor(2) as pool:
        manifests = list(pool.map(lambda _: synth_corpus(tmp_path / "c", clips={"val": 3}), range(2)))
    assert len(generated) == 1 and manifests[0] == manifests[1] and manifests[0].is_file()


def test_splits_come_from_disjoint_seeds(corpus):
    assert corpus["sha1"].is_unique
    first_val = generate_clip("val", 0)
    first_test = generate_clip("test", 0)
    assert not np.allclose(first_val.audio, first_test.audio)


def test_every_split_holds_attribute_contrast_pairs(corpus):
    for _, part in corpus.groupby("split"):
        for _, clips in part.groupby("class_id"):
            pitches = {json.loads(a)["pitch"] for a in clips["attributes"]}
            tempos = {json.loads(a)["tempo"] for a in clips["attributes"]}
            assert pitches == {"low", "high"} and tempos == {"slow", "fast"}


def test_captions_name_the_pitch_and_the_tempo(corpus):
    pitch_words = {p: {w.removesuffix("-pitched") for w in words} for p, words in PITCH_A.items()}
    pitch_words["low"] |= {"dull", "muffled"}
    pitch_words["high"] |= {"hissing", "bright"}
    tempo_words = {"slow": {"slow", "slowly", "sparsely", "lightly", "now and then", "unrushed"},
                   "fast": {"fast", "quick", "quickly", "rapid", "rapidly", "heavily"}}
    for captions, attributes in zip(corpus["captions"], corpus["attributes"], strict=True):
        attrs = json.loads(attributes)
        assert len(captions) >= 4
        for caption in captions:
            text = caption.lower()
            assert any(w in text for w in pitch_words[attrs["pitch"]]), caption
            assert any(w in text for w in tempo_words[attrs["tempo"]] | set(TEMPO_ADJ_A[attrs["tempo"]])), caption


def test_paraphrases_never_repeat_a_caption(corpus):
    for captions, paraphrases in zip(corpus["captions"], corpus["paraphrases"], strict=True):
        paraphrases = json.loads(paraphrases)
        assert len(paraphrases) >= 2
        assert not set(paraphrases) & set(captions)


def _centroid(audio: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(audio.shape[0], 1 / sample_rate)
    return float((spectrum * freqs).sum() / spectrum.sum())


def _fundamental(audio: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio, 2 * audio.shape[0])) ** 2
    autocorrelation = np.fft.irfft(spectrum)[: audio.shape[0]]
    low, high = sample_rate // 400, sample_rate // 60
    return sample_rate / (low + int(np.argmax(autocorrelation[low:high])))


def test_high_pitched_clips_are_audibly_higher_than_low_pitched_ones(corpus):
    val = corpus[corpus["split"] == "val"]
    speech = synth_classes().index("Speech")
    for class_id, clips in val[val["class_id"] != str(speech)].groupby("class_id"):
        centroids = {"low": [], "high": []}
        for path, attributes in zip(clips["path"], clips["attributes"], strict=True):
            audio, sr = read_audio(path)
            centroids[json.loads(attributes)["pitch"]].append(_centroid(audio, sr))
        assert min(centroids["high"]) > 1.5 * max(centroids["low"]), synth_classes()[int(class_id)]


def test_high_voices_have_a_higher_fundamental_than_low_voices(corpus):
    # formants are the same for every voice: pitch lives in the fundamental, not in the spectral centroid
    clips = corpus[corpus["class_id"] == str(synth_classes().index("Speech"))]
    f0 = {"low": [], "high": []}
    for path, attributes in zip(clips["path"], clips["attributes"], strict=True):
        audio, sr = read_audio(path)
        f0[json.loads(attributes)["pitch"]].append(_fundamental(audio, sr))
    assert max(f0["low"]) < 150 < 180 < min(f0["high"])


def test_clips_are_pcm16_at_the_requested_rate_and_length(corpus):
    audio, sr = read_audio(corpus["path"].iloc[0])
    assert sr == 16000 and audio.shape[0] == 64000
    assert 0.05 < np.abs(audio).max() <= 1.0


def test_unknown_split_is_rejected(tmp_path):
    with pytest.raises(LassbenchError, match="unknown split"):
        synth_corpus(tmp_path / "c", clips={"dev": 2})
