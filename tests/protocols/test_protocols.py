import http.server
import json
import threading

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from lassbench.audio import write_audio
from lassbench.build import BuildConfig, build_dataset
from lassbench.cli import main
from lassbench.corpora.synth import synth_corpus
from lassbench.errors import LassbenchError
from lassbench.manifests import read_item_manifest, read_source_manifest, write_manifest_csv
from lassbench.protocols.lassbench import LassbenchParams, SourcePool, draw_spec

SR = 16000


@pytest.fixture(scope="module")
def synth_val(tmp_path_factory):
    frame = read_source_manifest(synth_corpus(tmp_path_factory.mktemp("synth") / "c", clips={"val": 56}))
    return SourcePool.from_frame(frame), frame


def _clip(seed: int, seconds: float = 1.5, level: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * (200 + 150 * seed) * t) + 0.05 * rng.standard_normal(t.shape[0])).astype(
        np.float32)


@pytest.fixture
def clips(tmp_path):
    """A source manifest of 6 clips with YouTube-style ids and captions, as a download would write it."""
    folder = tmp_path / "sources"
    rows = []
    for k, name in enumerate(["aaa-1", "bbb_2", "ccc3", "ddd4", "eee5", "fff6"]):
        write_audio(folder / f"{name}.wav", _clip(k, level=0.2 + 0.15 * k), SR)
        rows.append({"source_id": name, "path": f"{name}.wav", "captions": [f"caption {k} one", f"caption {k} two"],
                     "labels": [], "split": "test", "sample_rate": SR, "num_samples": int(1.5 * SR),
                     "duration": 1.5, "sha1": "", "youtube_id": name})
    write_manifest_csv(pd.DataFrame(rows), folder / "manifest.csv")
    return folder


def _write(path, text: str):
    path.write_text(text)
    return str(path)


def _build(tmp_path, clips, protocol, index, **kwargs):
    config = BuildConfig(out=tmp_path / "out", sources=clips, protocol=protocol, index=index, progress=False,
                         **kwargs)
    return build_dataset(config)


def _read(path) -> np.ndarray:
    return sf.read(str(path), dtype="float64")[0]


# ------------------------------------------------------------------------------------------------- lassbench


def test_draw_spec_depends_only_on_seed_split_and_index(synth_val):
    pool, _ = synth_val
    params = LassbenchParams(contrast_fraction=0.3)
    forward = [draw_spec(i, pool, params, seed=3, split="val") for i in range(20)]
    backward = [draw_spec(i, pool, params, seed=3, split="val") for i in reversed(range(20))][::-1]
    assert forward == backward
    assert draw_spec(0, pool, params, seed=4, split="val") != forward[0]


def test_different_class_items_share_no_label_with_the_target(synth_val):
    pool, frame = synth_val
    labels = dict(zip(frame["source_id"], frame["labels"], strict=True))
    specs = [draw_spec(i, pool, LassbenchParams(max_interferers=3), seed=0, split="val") for i in range(100)]
    assert {s.condition for s in specs} == {"different_class"}
    for spec in specs:
        assert 1 <= len(spec.interferer_ids) <= 3
        for other in spec.interferer_ids:
            assert not set(labels[other]) & set(labels[spec.target_id])


def test_attribute_contrast_items_pair_the_same_class_with_another_attribute(synth_val):
    pool, frame = synth_val
    labels = dict(zip(frame["source_id"], frame["labels"], strict=True))
    attributes = {sid: json.loads(a) for sid, a in zip(frame["source_id"], frame["attributes"], strict=True)}
    specs = [draw_spec(i, pool, LassbenchParams(contrast_fraction=1.0), seed=0, split="val") for i in range(60)]
    assert {s.condition for s in specs} == {"attribute_contrast"}
    for spec in specs:
        first, mine = spec.interferer_ids[0], attributes[spec.target_id]
        assert labels[first] == labels[spec.target_id]
        assert any(attributes[first][k] != mine[k] for k in ("pitch", "tempo"))
        assert dict(spec.extra)["contrast_attribute"]


def test_contrast_fraction_sets_the_share_of_contrast_items(synth_val):
    pool, _ = synth_val
    specs = [draw_spec(i, pool, LassbenchParams(contrast_fraction=0.3), seed=0, split="val") for i in range(300)]
    share = np.mean([s.condition == "attribute_contrast" for s in specs])
    assert 0.2 < share < 0.4


def test_the_query_is_one_of_the_target_captions_and_snrs_lie_in_range(synth_val):
    pool, frame = synth_val
    captions = dict(zip(frame["source_id"], frame["captions"], strict=True))
    params = LassbenchParams(snr_min=-2.0, snr_max=1.0, lufs_jitter=2.0)
    for i in range(50):
        spec = draw_spec(i, pool, params, seed=0, split="val")
        assert spec.query in captions[spec.target_id]
        assert all(-2.0 <= s <= 1.0 for s in spec.snr_db)
        assert -25.0 <= spec.target_lufs <= -21.0


def test_too_few_label_disjoint_clips_is_an_actionable_error(synth_val):
    _, frame = synth_val
    alarms = frame[[labels == ["Alarm"] for labels in frame["labels"]]]
    with pytest.raises(LassbenchError, match="share no label"):
        draw_spec(0, SourcePool.from_frame(alarms), LassbenchParams(), seed=0)


def test_invalid_parameters_are_rejected():
    with pytest.raises(LassbenchError, match="snr-min"):
        LassbenchParams(snr_min=3, snr_max=1)
    with pytest.raises(LassbenchError, match="interferers"):
        LassbenchParams(min_interferers=3, max_interferers=2)


# ------------------------------------------------------------------------------------------------- dcase2024


def test_dcase2024_mixture_equals_target_plus_scaled_noise(tmp_path, clips):
    index = _write(tmp_path / "dcase.csv", "source,noise,snr,caption\naaa-1,bbb_2,-5,a tone\n"
                                           "ccc3,ddd4,10,another tone\nfff6,eee5,-15,loud noise\n")
    result = _build(tmp_path, clips, "dcase2024", index)
    manifest = read_item_manifest(result.manifest)
    assert manifest["query"].tolist() == ["a tone", "another tone", "loud noise"]
    for row in manifest.itertuples():
        source, noise = _read(clips / f"{row.target_id}.wav"), _read(clips / f"{row.interferer_ids[0]}.wav")
        scale = np.sqrt(np.mean(source**2) / 10 ** (row.snr_db / 10) / np.mean(noise**2))
        mixture = source + scale * noise
        peak = np.abs(mixture).max()
        factor = 0.9 / peak if peak > 1 else 1.0
        np.testing.assert_allclose(_read(result.out / "mixture" / f"{row.id}.wav"), mixture * factor, atol=1e-6)
        np.testing.assert_allclose(_read(result.out / "target" / f"{row.id}.wav"), source * factor, atol=1e-6)
        assert row.gain == pytest.approx(factor)
    assert (manifest["protocol"] == "dcase2024").all()


def test_dcase2024_rows_naming_absent_clips_fail_listing_them(tmp_path, clips, capsys):
    index = _write(tmp_path / "dcase.csv", "source,noise,snr,caption\naaa-1,nope1,0,x\nnope2,bbb_2,0,y\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["build-dataset", "--sources", str(clips), "--protocol", "dcase2024", "--index", index,
              "--out", str(tmp_path / "out"), "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "nope1" in err and "nope2" in err and "dcase.csv" in err and "--allow-missing" in err


def test_allow_missing_skips_those_rows_and_records_why(tmp_path, clips):
    index = _write(tmp_path / "dcase.csv", "source,noise,snr,caption\naaa-1,nope1,0,x\nccc3,bbb_2,0,y\n")
    result = _build(tmp_path, clips, "dcase2024", index, allow_missing=True)
    manifest = read_item_manifest(result.manifest)
    assert manifest["id"].tolist() == ["test-000001"]
    skipped = pd.read_csv(result.out / "skipped.csv")
    assert set(skipped["id"]) == {"nope1", "test-000000"}
    assert skipped.set_index("id").loc["nope1", "reason"].startswith("missing")


def test_malformed_snr_is_a_one_line_error_naming_the_file_and_line(tmp_path, clips, capsys):
    index = _write(tmp_path / "dcase.csv", "source,noise,snr,caption\naaa-1,bbb_2,0,x\nccc3,ddd4,loud,y\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["build-dataset", "--sources", str(clips), "--protocol", "dcase2024", "--index", index,
              "--out", str(tmp_path / "out"), "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "dcase.csv: line 3" in err and "'loud'" in err


def test_index_protocols_need_an_index(tmp_path, clips):
    with pytest.raises(LassbenchError, match="needs --index"):
        _build(tmp_path, clips, "lassnet", None)


def test_index_with_missing_columns_is_rejected(tmp_path, clips):
    index = _write(tmp_path / "dcase.csv", "source,noise,caption\naaa-1,bbb_2,x\n")
    with pytest.raises(LassbenchError, match="lacks column"):
        _build(tmp_path, clips, "dcase2024", index)


def test_index_is_read_from_a_url(tmp_path, clips):
    body = b"source,noise,snr,caption\naaa-1,bbb_2,3,from the web\n"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/list.csv"
        manifest = read_item_manifest(_build(tmp_path, clips, "dcase2024", url).manifest)
    finally:
        server.shutdown()
    assert manifest["query"].tolist() == ["from the web"]


# --------------------------------------------------------------------------------------------------- lassnet


def test_lassnet_pairs_use_the_target_captions_in_turn_and_peak_at_one(tmp_path, clips):
    index = _write(tmp_path / "evaluation_indexes.csv", "target_wav, noise_wav\naaa-1,bbb_2\naaa-1,ccc3\n"
                                                        "aaa-1,ddd4\nddd4,eee5\n")
    result = _build(tmp_path, clips, "lassnet", index, sample_rate=SR)
    manifest = read_item_manifest(result.manifest)
    assert manifest["query"].tolist() == ["caption 0 one", "caption 0 two", "caption 0 one", "caption 3 one"]
    for row in manifest.itertuples():
        target, noise = _read(clips / f"{row.target_id}.wav"), _read(clips / f"{row.interferer_ids[0]}.wav")
        mixture = target / np.abs(target).max() + noise / np.abs(noise).max()
        expected = np.pad(mixture / np.abs(mixture).max(), (0, 10 * SR - mixture.shape[0]))  # load_wav pads to 10 s
        np.testing.assert_allclose(_read(result.out / "mixture" / f"{row.id}.wav"), expected, atol=1e-6)
    assert result.out.joinpath("dataset.json").read_text().count('"lassnet"') >= 1


def test_lassnet_defaults_to_32_khz_and_pads_every_clip_to_10_s(tmp_path, clips):
    index = _write(tmp_path / "e.csv", "target_wav, noise_wav\naaa-1,bbb_2\n")
    manifest = read_item_manifest(_build(tmp_path, clips, "lassnet", index).manifest)
    assert manifest["sample_rate"].tolist() == [32000]
    assert manifest["num_samples"].tolist() == [320000]


# -------------------------------------------------------------------------------------------------- audiosep


def test_audiosep_resolves_y_prefixed_names_and_mixes_at_the_drawn_gain(tmp_path, clips):
    index = _write(tmp_path / "audiocaps_eval.csv",
                   'idx,caption,labels,src_wav,noise_wav\n0,a tone,"Speech Music",Yaaa-1.wav,Ybbb_2.wav\n'
                   '1,other,Dog,Yccc3.wav,Yddd4.wav\n')
    result = _build(tmp_path, clips, "audiosep", index, sample_rate=SR)
    manifest = read_item_manifest(result.manifest)
    assert manifest["target_id"].tolist() == ["aaa-1", "ccc3"]
    assert manifest["labels"].tolist() == [["Speech Music"], ["Dog"]]
    for row in manifest.itertuples():
        target = _read(result.out / "target" / f"{row.id}.wav")
        noise = _read(result.out / "interferers" / f"{row.id}_0.wav")
        measured = 10 * np.log10(np.mean(target**2) / np.mean(noise**2))
        assert measured == pytest.approx(row.snr_db, abs=1e-3)
        assert float(row.snr_db) == pytest.approx(round(row.snr_db), abs=1e-3)  # an integer dB gain
        assert -10 <= row.snr_db <= 10


def test_audiosep_clotho_lists_mix_two_noises(tmp_path, clips):
    index = _write(tmp_path / "clotho_eval.csv",
                   "idx,caption,src_wav,noise_wav1,noise_wav1\n0,a machine,aaa-1.wav,bbb_2.wav,ccc3.wav\n")
    manifest = read_item_manifest(_build(tmp_path, clips, "audiosep", index, sample_rate=SR).manifest)
    assert manifest["interferer_ids"].tolist() == [["bbb_2", "ccc3"]]


def test_audiosep_gains_are_reproducible_from_the_seed(tmp_path, clips):
    index = _write(tmp_path / "e.csv", "idx,caption,src_wav,noise_wav\n0,x,aaa-1.wav,bbb_2.wav\n"
                                       "1,y,ccc3.wav,ddd4.wav\n")
    first = read_item_manifest(_build(tmp_path / "a", clips, "audiosep", index, sample_rate=SR).manifest)
    second = read_item_manifest(_build(tmp_path / "b", clips, "audiosep", index, sample_rate=SR).manifest)
    assert first["mixture_sha1"].tolist() == second["mixture_sha1"].tolist()
