"""The published protocols as their authors evaluate them (issue 12): AudioSep's six rendered layouts read as they are,
LASS-Net's 10 s padding, every listed row built (no loudness gate), CLAPSep's protocol, and golden values produced by
the official code on the fixture clips below (tests/golden/published_protocols.json; how they were made: its
``made_with`` entry and docs/reproduce.md)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from lassbench.build import BuildConfig, build_dataset
from lassbench.cli import main
from lassbench.errors import LassbenchError
from lassbench.evaluate import evaluate_manifest
from lassbench.manifests import read_item_manifest
from lassbench.mixing import integrated_loudness

from support.paths import GOLDEN as GOLDENS

GOLDEN = GOLDENS / "published_protocols.json"
RATE = 32000


# ------------------------------------------------------------------------------------------ fixture clips
# (also imported by the script that ran the official code: keep them deterministic)

FIXTURE_CLIPS = {  # name: (seconds, file rate, kind, peak)
    "Yt7": (7.0, 32000, "tone", 0.8),
    "Yn12": (12.0, 32000, "noise", 0.95),
    "Yt16k": (9.0, 16000, "tone", 0.7),
    "Yn10": (10.0, 44100, "noise", 0.9),
    "Yq10": (10.0, 32000, "noise", 4.8e-4),  # about -75 LUFS: under the lassbench protocol's -70 LUFS gate
}


def fixture_clip(name: str) -> tuple[np.ndarray, int]:
    seconds, rate, kind, peak = FIXTURE_CLIPS[name]
    n = int(seconds * rate)
    t = np.arange(n) / rate
    seed = sum(map(ord, name))
    if kind == "tone":
        x = np.sin(2 * np.pi * (220 + seed % 200) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    else:
        # a deterministic noise-like signal (a sum of incommensurate sines: no RNG-stream dependence)
        x = sum(np.sin(2 * np.pi * f * (1 + seed % 17 / 50) * t + k * seed)
                for k, f in enumerate([97.3, 311.7, 1013.9, 2711.3, 5003.1]))
    x = x / np.abs(x).max() * peak
    return x.astype(np.float32), rate


def write_fixture_clips(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in FIXTURE_CLIPS:
        audio, rate = fixture_clip(name)
        sf.write(str(folder / f"{name}.wav"), audio, rate, subtype="FLOAT")
    return folder


# index rows the golden values were computed for
LASSNET_ROWS = [("Yt7", "Yt16k"), ("Yt16k", "Yq10")]
DCASE_ROWS = [("Yn10", "Yq10", 0), ("Yq10", "Yn10", 5), ("Yn10", "Yq10", -10)]  # equal lengths, as in the list
CLAPSEP_ROWS = [("Yt7", "Yn12"), ("Yt16k", "Yt7"), ("Yn12", "Yq10"), ("Yn10", "Yn12")]
POSITIONS = [0, 1, 777, 16000, 100003, 159999, 160000, 223999, 224000, 250001, 287999, 288000, 319999]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return write_fixture_clips(tmp_path_factory.mktemp("published") / "clips")


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


def _index(path: Path, header: str, rows) -> str:
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return str(path)


def _build(out: Path, sources, protocol: str, index: str, **kwargs):
    return build_dataset(BuildConfig(out=out, sources=sources, protocol=protocol, index=index, progress=False,
                                     **kwargs))


def _read(path) -> np.ndarray:
    return sf.read(str(path), dtype="float32")[0]


def _compare(result, golden_items: list[dict], tolerance: float) -> float:
    """Largest |lassbench - official| over the golden samples of every item; asserts the lengths too."""
    manifest = read_item_manifest(result.manifest)
    assert len(manifest) == len(golden_items)
    worst = 0.0
    for row, expected in zip(manifest.itertuples(), golden_items, strict=True):
        mixture, target = _read(result.out / row.mixture_path), _read(result.out / row.target_path)
        assert mixture.shape[0] == expected["length"]
        positions = [p for p in POSITIONS if p < expected["length"]]
        for name, array in (("mixture", mixture), ("target", target)):
            got = array[positions].astype(np.float64)
            worst = max(worst, float(np.abs(got - np.asarray(expected[name])).max()))
            assert float(np.sum(np.square(array, dtype=np.float64))) == pytest.approx(expected[f"{name}_energy"],
                                                                                      rel=1e-4)
    assert worst <= tolerance
    return worst


# ---------------------------------------------------------------------------------------- golden: official code


def test_clapsep_mixtures_match_the_official_code_within_1e_5(tmp_path, clips, golden):
    index = _index(tmp_path / "audiocaps_eval.csv", "source_file,positive_caption,noise_file,negative_caption",
                   [(f"{t}.wav", f"caption of {t}", f"{n}.wav", f"caption of {n}") for t, n in CLAPSEP_ROWS])
    result = _build(tmp_path / "out", clips, "clapsep", index)
    _compare(result, golden["clapsep"], 1e-5)
    manifest = read_item_manifest(result.manifest)
    assert manifest["negative_query"].tolist() == [f"caption of {n}" for _, n in CLAPSEP_ROWS]
    assert manifest["query"].tolist() == [f"caption of {t}" for t, _ in CLAPSEP_ROWS]
    assert (manifest["num_samples"] == 10 * RATE).all()  # cropped (12 s) and padded (7 s, 9 s) to 10 s
    assert json.loads((result.out / "dataset.json").read_text())["exact"] is True


def test_lassnet_items_match_the_official_code_and_a_7_s_target_builds_a_10_s_item(tmp_path, clips, golden):
    index = _index(tmp_path / "evaluation_indexes.csv", "target_wav, noise_wav", LASSNET_ROWS)
    (clips.parent / "lassnet").mkdir(exist_ok=True)
    sources = clips.parent / "lassnet" / "manifest.csv"
    frame = pd.DataFrame([{"source_id": n, "path": str(clips / f"{n}.wav"), "captions": json.dumps([f"a {n}"]),
                           "labels": "[]", "split": "test", "sample_rate": 0, "num_samples": 0, "duration": 0.0,
                           "sha1": ""} for n in FIXTURE_CLIPS])
    frame.to_csv(sources, index=False)
    result = _build(tmp_path / "out", sources, "lassnet", index)
    _compare(result, golden["lassnet"], 1e-5)
    manifest = read_item_manifest(result.manifest)
    assert manifest.loc[manifest["target_id"] == "Yt7", "num_samples"].tolist() == [10 * RATE]


def test_lassnet_keeps_a_clip_longer_than_10_s_whole(tmp_path, clips):
    index = _index(tmp_path / "evaluation_indexes.csv", "target_wav, noise_wav", [("Yn12", "Yt7")])
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("Yn12", "Yt7"):
        (folder / f"{name}.wav").write_bytes((clips / f"{name}.wav").read_bytes())
    (folder / "captions.csv").write_text("file_name,caption_1\nYn12.wav,a noise\nYt7.wav,a tone\n")
    manifest = read_item_manifest(_build(tmp_path / "out", folder, "lassnet", index).manifest)
    assert manifest["num_samples"].tolist() == [12 * RATE]  # load_wav's crop line is dead code


def test_dcase_rows_with_a_75_lufs_noise_are_built_and_match_the_official_code(tmp_path, clips, golden):
    quiet = sf.read(str(clips / "Yq10.wav"), dtype="float32")[0]
    assert -78 < integrated_loudness(quiet * 100, 32000) - 40 < -72  # about -75 LUFS (measured 40 dB louder)
    assert integrated_loudness(quiet, 32000) == -np.inf  # below the -70 LUFS gate: "silent" to the lassbench protocol
    index = _index(tmp_path / "dcase.csv", "source,noise,snr,caption",
                   [(s, n, snr, f"caption {s}") for s, n, snr in DCASE_ROWS])
    result = _build(tmp_path / "out", clips, "dcase2024", index)
    _compare(result, golden["dcase2024"], 1e-5)
    assert pd.read_csv(result.out / "skipped.csv").empty
    # scored too: the mixture itself as the estimate (SDRi 0 by definition)
    per_item, summary = evaluate_manifest(result.out / "manifest.csv", result.out / "mixture", out=None)
    assert len(per_item) == len(DCASE_ROWS) and np.isfinite(per_item["sdr"]).all()


def test_only_the_lassbench_protocol_gates_quiet_clips(tmp_path, clips):
    result = _build(tmp_path / "out", clips, "lassbench", None, sample_rate=16000, num_items=3)
    skipped = pd.read_csv(result.out / "skipped.csv")
    assert skipped.set_index("id").loc["Yq10", "reason"].startswith("silent")


# ------------------------------------------------------------------------------- AudioSep: rendered layouts


def _pair(seed: int, seconds: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(seconds * RATE)) / RATE
    target = (0.3 * np.sin(2 * np.pi * (300 + 40 * seed) * t)).astype(np.float32)
    noise = (0.2 * np.sin(2 * np.pi * (1700 + 90 * seed) * t + seed)).astype(np.float32)
    return target, target + noise


def _write_pair(folder: Path, target_name: str, mixture_name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    target, mixture = _pair(seed)
    for name, audio in ((target_name, target), (mixture_name, mixture)):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(folder / name), audio, RATE, subtype="FLOAT")
    return target, mixture


def _idx_set(tmp_path: Path, kind: str, header: str, rows: list[str]):
    folder = tmp_path / kind
    pairs = [_write_pair(folder, f"segment-{k}.wav", f"mixture-{k}.wav", k) for k in range(len(rows))]
    index = tmp_path / f"{kind}_eval.csv"
    index.write_text(header + "\n" + "".join(f"{k},{row}\n" for k, row in enumerate(rows)))
    return folder, str(index), pairs


IDX_SETS = {
    "audiocaps": ("idx,caption,labels,src_wav,noise_wav",
                  ['a dog barks,"Dog Animal",Yaaa.wav,Ybbb.wav', "rain falls,Rain,Yccc.wav,Yddd.wav"],
                  ["a dog barks", "rain falls"], [["Dog Animal"], ["Rain"]], "mean"),
    "clotho": ("idx,caption,src_wav,noise_wav1,noise_wav1",
               ["a machine whines,m.wav,n1.wav,n2.wav", "birds sing,b.wav,n3.wav,n4.wav"],
               ["a machine whines", "birds sing"], [[], []], "mean"),
    "esc50": ("idx,caption,src_wav,noise_wav", ["dog,1-1-A-0.wav,2-2-B-1.wav", "rooster,1-2-A-1.wav,3-3-C-2.wav"],
              ["dog", "rooster"], [["dog"], ["rooster"]], "mean"),
    "music": ("idx,caption,src_wav,noise_wav", ["accordion,Ya_0.wav,Yb_1.wav", "violin,Yc_0.wav,Yd_2.wav",
                                                  "accordion,Ya_0.wav,Ye_3.wav"],
              ["accordion", "violin", "accordion"], [["accordion"], ["violin"], ["accordion"]], "class-mean"),
}


@pytest.mark.parametrize("kind", list(IDX_SETS))
def test_audiosep_idx_layouts_build_from_the_published_files_as_they_are(tmp_path, kind):
    header, rows, queries, labels, aggregation = IDX_SETS[kind]
    folder, index, pairs = _idx_set(tmp_path, kind, header, rows)
    result = _build(tmp_path / "out", folder, "audiosep", index)
    manifest = read_item_manifest(result.manifest)
    assert manifest["query"].tolist() == queries
    assert manifest["labels"].tolist() == labels
    for row, (target, mixture) in zip(manifest.itertuples(), pairs, strict=True):
        assert np.array_equal(_read(result.out / row.mixture_path), mixture)  # bit for bit: nothing re-mixed
        assert np.array_equal(_read(result.out / row.target_path), target)
        residual = _read(result.out / "interferers" / f"{row.id}_0.wav")
        np.testing.assert_allclose(target + residual, mixture, atol=1e-7)
    described = json.loads((result.out / "dataset.json").read_text())
    assert described["exact"] is True
    assert described["parameters"]["set"] == kind and described["parameters"]["aggregation"] == aggregation
    per_item, summary = evaluate_manifest(result.out / "manifest.csv", result.out / "mixture", out=None)
    assert len(per_item) == len(rows) and summary["aggregate"] == aggregation and summary["exact"] is True
    assert np.allclose(per_item["sdri"], 0.0, atol=1e-9)  # the published mixture scored as itself


def test_audiosep_audioset_layout_queries_the_class_display_name(tmp_path):
    folder = tmp_path / "audioset"
    rows, pairs = [], []
    for class_id, name in ((0, "Speech"), (137, '"Music"')):
        for k in range(2):
            stem = f"class_id={class_id}/class_id={class_id},index={k:03d}"
            pairs.append(_write_pair(folder, f"{stem},source.wav", f"{stem},mixture.wav", class_id + k))
            path = f"evaluation/data/audioset/{stem}"
            rows.append(f'{class_id},{name},"{path},source.wav","{path},mixture.wav"')
    index = tmp_path / "audioset_eval.csv"
    index.write_text("idx,caption,src_wav,noise_wav\n" + "\n".join(rows) + "\n")
    result = _build(tmp_path / "out", folder, "audiosep", str(index))
    manifest = read_item_manifest(result.manifest)
    assert manifest["query"].tolist() == ["Speech", "Speech", "Music", "Music"]
    assert manifest["labels"].tolist() == [["Speech"]] * 2 + [["Music"]] * 2
    for row, (target, mixture) in zip(manifest.itertuples(), pairs, strict=True):
        assert np.array_equal(_read(result.out / row.mixture_path), mixture)
        assert np.array_equal(_read(result.out / row.target_path), target)
    described = json.loads((result.out / "dataset.json").read_text())
    assert described["exact"] is True and described["parameters"]["aggregation"] == "class-median-mean"
    _, summary = evaluate_manifest(result.out / "manifest.csv", result.out / "target", out=None)
    assert summary["aggregate"] == "class-median-mean" and summary["n_items"] == 4


def test_audiosep_vggsound_layout_reads_mix_wav_and_s0_wav(tmp_path):
    folder = tmp_path / "vggsound"
    rows, pairs = [], []
    for k, (a, b) in enumerate((("playing accordion", "sea lion barking"), ("dog barking", "rain"))):
        file_id = f"-id{k}_000030+++x{k}_000001"
        pairs.append(_write_pair(folder, f"data/s0_wav/{file_id}.wav", f"data/mix_wav/{file_id}.wav", k))
        rows.append(f"{file_id},data/mix_wav/{file_id}.wav,data/s0_wav/{file_id}.wav,{a},data/s1_wav/{file_id}.wav,{b}")
    index = tmp_path / "vggsound_eval.csv"
    index.write_text("file_id,mix_wav,s0_wav,s0_text,s1_wav,s1_text\n" + "\n".join(rows) + "\n")
    result = _build(tmp_path / "out", folder, "audiosep", str(index))
    manifest = read_item_manifest(result.manifest)
    assert manifest["query"].tolist() == ["playing accordion", "dog barking"]
    for row, (target, mixture) in zip(manifest.itertuples(), pairs, strict=True):
        assert np.array_equal(_read(result.out / row.mixture_path), mixture)
        assert np.array_equal(_read(result.out / row.target_path), target)
    per_item, _ = evaluate_manifest(result.out / "manifest.csv", result.out / "mixture", out=None)
    assert len(per_item) == 2


def test_audiosep_rendered_rows_with_missing_files_fail_unless_allowed(tmp_path, capsys):
    folder, index, _ = _idx_set(tmp_path, "esc50", *IDX_SETS["esc50"][:2])
    (folder / "mixture-1.wav").unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(["build-dataset", "--sources", str(folder), "--protocol", "audiosep", "--index", index,
              "--out", str(tmp_path / "out"), "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "mixture-1.wav" in err
    result = _build(tmp_path / "out2", folder, "audiosep", index, allow_missing=True)
    assert read_item_manifest(result.manifest)["id"].tolist() == ["test-000000"]


def test_audiosep_file_names_leaving_the_folder_are_refused(tmp_path):
    folder = tmp_path / "vggsound"
    folder.mkdir()
    index = tmp_path / "vggsound_eval.csv"
    index.write_text("file_id,mix_wav,s0_wav,s0_text,s1_wav,s1_text\nx,../m.wav,../s.wav,a,s1.wav,b\n")
    with pytest.raises(LassbenchError, match="outside the sources folder"):
        _build(tmp_path / "out", folder, "audiosep", str(index))


def test_audiosep_remix_from_raw_clips_says_it_is_not_exact(tmp_path, clips):
    index = _index(tmp_path / "esc50_eval.csv", "idx,caption,src_wav,noise_wav", [(0, "dog", "Yt7.wav", "Yn10.wav")])
    result = _build(tmp_path / "out", clips, "audiosep", index)
    described = json.loads((result.out / "dataset.json").read_text())
    assert described["exact"] is False and described["parameters"]["rendered"] is False


def test_audiosep_audioset_list_without_its_rendered_folder_is_one_clear_error(tmp_path, clips):
    index = tmp_path / "audioset_eval.csv"
    index.write_text('idx,caption,src_wav,noise_wav\n0,Speech,"evaluation/data/audioset/class_id=0/class_id=0,'
                     'index=000,source.wav","x"\n')
    with pytest.raises(LassbenchError, match="none of the 1 rendered pairs"):
        _build(tmp_path / "out", clips, "audiosep", str(index))


def test_leaderboard_rows_of_a_remixed_audiosep_benchmark_say_not_exact(tmp_path, clips):
    from lassbench.leaderboard import read_result_folder

    index = _index(tmp_path / "esc50_eval.csv", "idx,caption,src_wav,noise_wav", [(0, "dog", "Yt7.wav", "Yn10.wav")])
    result = _build(tmp_path / "esc50-remix", clips, "audiosep", index)
    rows = {}
    for name, folder in (("remix", result.out), ("rendered", None)):
        if folder is None:
            source, index2, _ = _idx_set(tmp_path, "esc50", *IDX_SETS["esc50"][:2])
            folder = _build(tmp_path / "esc50-rendered", source, "audiosep", index2).out
        out = tmp_path / "results" / name / "mixture"
        evaluate_manifest(folder / "manifest.csv", folder / "mixture", out=out)
        rows[name] = read_result_folder(out)
    assert rows["remix"].exact == "no" and rows["rendered"].exact == "yes"


def test_another_sample_rate_is_not_exact(tmp_path):
    folder, index, _ = _idx_set(tmp_path, "esc50", *IDX_SETS["esc50"][:2])
    result = _build(tmp_path / "out", folder, "audiosep", index, sample_rate=16000)
    assert json.loads((result.out / "dataset.json").read_text())["exact"] is False  # the evaluators load at 32 kHz
