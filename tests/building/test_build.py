import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyloudnorm
import pytest
import soundfile as sf

from lassbench.audio import write_audio
from lassbench.build import BuildConfig, build_dataset
from lassbench.cli import main
from lassbench.corpora.folder import index_folder
from lassbench.corpora.synth import synth_corpus
from lassbench.errors import LassbenchError
from lassbench.manifests import ITEM_COLUMNS, read_item_manifest

SR = 16000


@pytest.fixture(scope="module")
def synth_manifest(tmp_path_factory):
    return synth_corpus(tmp_path_factory.mktemp("synth") / "c", clips={"val": 42, "test": 42})


def _config(out, sources, **kwargs) -> BuildConfig:
    kwargs.setdefault("num_items", 12)
    return BuildConfig(out=out, sources=str(sources), progress=False, **kwargs)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".lassbench" not in p.parts}


def _tone(seconds: float, freq: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_build_writes_the_documented_layout(tmp_path, synth_manifest):
    result = build_dataset(_config(tmp_path / "out", synth_manifest))
    out = result.out
    manifest = read_item_manifest(out / "manifest.csv")
    assert list(manifest.columns[: len(ITEM_COLUMNS)]) == ITEM_COLUMNS
    assert len(manifest) == 24 and manifest["id"].is_unique
    assert set(manifest["split"]) == {"val", "test"}
    for row in manifest.itertuples():
        assert (out / "mixture" / f"{row.id}.wav").is_file() and (out / "target" / f"{row.id}.wav").is_file()
        for k in range(len(row.interferer_ids)):
            assert (out / "interferers" / f"{row.id}_{k}.wav").is_file()
    assert pd.read_parquet(out / "manifest.parquet")["id"].tolist() == manifest["id"].tolist()
    description = json.loads((out / "dataset.json").read_text())
    assert description["protocol"] == "lassbench" and description["counts"] == {"val": 12, "test": 12}
    assert description["parameters"]["target_lufs"] == -23.0 and "lassbench_version" in description
    assert sf.info(str(out / "mixture" / "val-000000.wav")).subtype == "FLOAT"


def test_built_targets_sit_at_the_requested_loudness_and_snr(tmp_path, synth_manifest):
    result = build_dataset(_config(tmp_path / "out", synth_manifest, options={"max_interferers": 1}))
    manifest = read_item_manifest(result.manifest)
    meter = pyloudnorm.Meter(SR)
    for row in manifest.itertuples():
        target = sf.read(str(result.out / row.target_path), dtype="float64")[0]
        noise = sf.read(str(result.out / f"interferers/{row.id}_0.wav"), dtype="float64")[0]
        target_lufs = meter.integrated_loudness(target)
        assert target_lufs == pytest.approx(row.target_lufs, abs=0.1)
        if row.gain == 1.0:
            assert target_lufs == pytest.approx(-23.0, abs=0.1)
        assert target_lufs - meter.integrated_loudness(noise) == pytest.approx(row.snr_db, abs=0.1)


def test_same_seed_gives_identical_checksums_and_another_seed_does_not(tmp_path, synth_manifest):
    first = read_item_manifest(build_dataset(_config(tmp_path / "a", synth_manifest)).manifest)
    second = read_item_manifest(build_dataset(_config(tmp_path / "b", synth_manifest)).manifest)
    third = read_item_manifest(build_dataset(_config(tmp_path / "c", synth_manifest, seed=1)).manifest)
    assert first["mixture_sha1"].tolist() == second["mixture_sha1"].tolist()
    assert first["target_sha1"].tolist() == second["target_sha1"].tolist()
    assert first["mixture_sha1"].tolist() != third["mixture_sha1"].tolist()


def test_union_of_shards_is_the_unsharded_build_byte_for_byte(tmp_path, synth_manifest):
    build_dataset(_config(tmp_path / "whole" / "bench", synth_manifest))
    first = build_dataset(_config(tmp_path / "sharded" / "bench", synth_manifest, shard=(0, 3)))
    assert first.manifest is None and first.built == 8
    build_dataset(_config(tmp_path / "sharded" / "bench", synth_manifest, shard=(2, 3)))
    last = build_dataset(_config(tmp_path / "sharded" / "bench", synth_manifest, shard=(1, 3)))
    assert last.manifest is not None
    assert _files(tmp_path / "whole" / "bench") == _files(tmp_path / "sharded" / "bench")


def test_shards_built_in_separate_folders_merge_by_copying(tmp_path, synth_manifest):
    import shutil

    build_dataset(_config(tmp_path / "whole" / "bench", synth_manifest))
    build_dataset(_config(tmp_path / "s0" / "bench", synth_manifest, shard=(0, 2)))
    build_dataset(_config(tmp_path / "s1" / "bench", synth_manifest, shard=(1, 2)))
    shutil.copytree(tmp_path / "s0" / "bench", tmp_path / "s1" / "bench", dirs_exist_ok=True)
    result = build_dataset(_config(tmp_path / "s1" / "bench", synth_manifest))
    assert result.built == 0 and result.manifest is not None
    assert _files(tmp_path / "whole" / "bench") == _files(tmp_path / "s1" / "bench")


def test_workers_build_the_same_bytes(tmp_path, synth_manifest):
    build_dataset(_config(tmp_path / "one" / "bench", synth_manifest))
    build_dataset(_config(tmp_path / "two" / "bench", synth_manifest, workers=2))
    assert _files(tmp_path / "one" / "bench") == _files(tmp_path / "two" / "bench")


def test_rerun_resumes_building_only_what_is_missing(tmp_path, synth_manifest):
    out = tmp_path / "out"
    build_dataset(_config(out, synth_manifest))
    (out / ".lassbench" / "items" / "test-000003.json").unlink()
    (out / "mixture" / "test-000003.wav").unlink()
    result = build_dataset(_config(out, synth_manifest))
    assert (result.built, result.reused) == (1, 23)
    assert (out / "mixture" / "test-000003.wav").is_file()


def test_a_folder_built_with_other_settings_is_not_silently_reused(tmp_path, synth_manifest):
    build_dataset(_config(tmp_path / "out", synth_manifest))
    with pytest.raises(LassbenchError, match="other settings"):
        build_dataset(_config(tmp_path / "out", synth_manifest, seed=5))


def test_the_benchmark_is_named_after_its_output_folder(tmp_path, synth_manifest):
    result = build_dataset(_config(tmp_path / "audiocaps-lassnet", synth_manifest, num_items=1))
    assert json.loads((result.out / "dataset.json").read_text())["name"] == "audiocaps-lassnet"


def test_excluding_ids_in_a_built_folder_is_not_silently_reused(tmp_path, synth_manifest):
    build_dataset(_config(tmp_path / "out", synth_manifest))
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("synth-test-00000\n")
    with pytest.raises(LassbenchError, match="other settings"):
        build_dataset(_config(tmp_path / "out", synth_manifest, exclude_ids=exclude))


def test_more_items_or_splits_extend_a_build_without_rebuilding(tmp_path, synth_manifest):
    build_dataset(_config(tmp_path / "out", synth_manifest, splits=("val",), num_items=5))
    result = build_dataset(_config(tmp_path / "out", synth_manifest, num_items=8))
    assert (result.built, result.reused) == (11, 5)


def test_pcm16_subtype_is_written_on_request(tmp_path, synth_manifest):
    result = build_dataset(_config(tmp_path / "out", synth_manifest, num_items=2, subtype="PCM_16"))
    assert sf.info(str(result.out / "mixture" / "val-000000.wav")).subtype == "PCM_16"


def _folder_with_bad_clips(folder: Path) -> Path:
    names = {"a dog, barking - loud": 220.0, "bird-song": 900.0, "car engine": 110.0, "rain, heavy": 1500.0}
    labels = ["file_name,labels"]
    for k, (name, freq) in enumerate(names.items()):
        write_audio(folder / f"{name}.wav", _tone(2.0, freq), SR)
        labels.append(f'"{name}.wav",class{k}')
    write_audio(folder / "quiet.wav", np.zeros(SR, dtype=np.float32), SR)
    write_audio(folder / "blip.wav", _tone(0.2, 440.0), SR)
    (folder / "broken.wav").write_bytes(b"RIFF not really a wav")
    (folder / "labels.csv").write_text("\n".join(labels) + "\n")
    return folder


def test_plain_folder_with_odd_names_builds_and_skipped_clips_have_reasons(tmp_path):
    folder = _folder_with_bad_clips(tmp_path / "clips")
    result = build_dataset(_config(tmp_path / "out", folder, num_items=6, options={"max_interferers": 1}))
    manifest = read_item_manifest(result.manifest)
    used = set(manifest["target_id"]) | {i for ids in manifest["interferer_ids"] for i in ids}
    assert used <= {"a dog, barking - loud", "bird-song", "car engine", "rain, heavy"}
    assert set(manifest["split"]) == {"test"}
    reasons = pd.read_csv(result.out / "skipped.csv").set_index("id")["reason"].to_dict()
    assert reasons["quiet"].startswith("silent")
    assert reasons["blip"].startswith("too_short")
    assert reasons["broken.wav"].startswith("unreadable")
    assert all(q for q in manifest["query"])


def test_a_folder_without_captions_gets_a_note_that_names_and_labels_become_queries(tmp_path, capsys):
    folder = _folder_with_bad_clips(tmp_path / "clips")  # 4 labelled clips, 3 bad ones without labels
    with pytest.raises(SystemExit):  # a build this small plans no item: the note comes first all the same
        main(["build-dataset", "--sources", str(folder), "--out", str(tmp_path / "out"), "--num-items", "0",
              "--quiet"])
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"note: 7 of 7 clips in {folder} have no caption (captions.csv): 4 are queried by their first "
                      "label (labels.csv), 3 by their file name read as words (see docs/data.md)")
    (folder / "captions.csv").write_text("file_name,caption_1\n" + "".join(
        f'"{p.name}",a sound\n' for p in folder.glob("*.wav")))
    with pytest.raises(SystemExit):
        main(["build-dataset", "--sources", str(folder), "--out", str(tmp_path / "out2"), "--num-items", "0",
              "--quiet"])
    assert "no caption" not in capsys.readouterr().err


def test_folder_names_escaping_the_folder_are_rejected(tmp_path):
    folder = tmp_path / "clips"
    write_audio(tmp_path / "outside.wav", _tone(1.0, 300.0), SR)
    folder.mkdir()
    (folder / "link.wav").symlink_to(tmp_path / "outside.wav")
    with pytest.raises(LassbenchError, match="outside the folder"):
        index_folder(folder)


def test_names_with_path_separators_or_dot_names_are_rejected(tmp_path):
    from lassbench.corpora.folder import check_source_name

    assert check_source_name("09-07-14_2338_Foz, fisherman next to the river.wav", tmp_path) == (
        "09-07-14_2338_Foz, fisherman next to the river")
    for name in ("sub/clip.wav", "back\\slash.wav", "..", "."):
        with pytest.raises(LassbenchError, match="not plain file names"):
            check_source_name(name, tmp_path)


def test_leaking_clips_are_reported_and_strict_refuses(tmp_path, synth_manifest, capsys):
    first = read_item_manifest(build_dataset(_config(tmp_path / "probe", synth_manifest)).manifest)
    train = tmp_path / "training_indexes.csv"
    train.write_text(first["target_id"].iloc[0] + "\n")
    result = build_dataset(_config(tmp_path / "out", synth_manifest, train_manifest=train))
    leaks = pd.read_csv(result.out / "leakage.csv")
    assert result.leaks >= 1 and first["target_id"].iloc[0] in set(leaks["source_id"])
    assert "leakage:" in capsys.readouterr().err  # reported even without --strict
    with pytest.raises(SystemExit) as exit_info:
        main(["build-dataset", "--sources", str(synth_manifest), "--num-items", "12", "--out",
              str(tmp_path / "strict"), "--train-manifest", str(train), "--strict", "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: leakage:") and len(err.splitlines()) == 1
    assert not (tmp_path / "strict" / "mixture").exists()


def test_id_lists_read_manifests_and_plain_lists_alike(tmp_path):
    from lassbench.leakage import read_id_list
    from lassbench.manifests import write_manifest_csv

    write_manifest_csv(pd.DataFrame({"source_id": ["-aYumc8KoXg", "abc"], "youtube_id": ["-aYumc8KoXg", "xyz"],
                                     "path": ["a.wav", "b.wav"]}), tmp_path / "manifest.csv")
    assert read_id_list(tmp_path / "manifest.csv") == {"-aYumc8KoXg", "abc", "xyz"}
    (tmp_path / "ids.txt").write_text("# LASS-Net training ids\n-aYumc8KoXg\nYq1.wav\n\n")
    assert read_id_list(tmp_path / "ids.txt") == {"-aYumc8KoXg", "Yq1"}


def test_exclusion_and_leakage_match_clip_names_the_same_way():
    from lassbench.leakage import find_leaks, listed_sources, source_aliases
    from lassbench.mixing import ItemSpec

    frame = pd.DataFrame({"source_id": ["ac-1", "ac-2", "Yq2345678901", "ac-4"],
                          "youtube_id": ["abc45678901", "xyz45678901", "", ""]})
    listed = {"Yabc45678901", "q2345678901", "ac-4"}  # AudioSep name, bare YouTube id, plain source id
    assert listed_sources(frame, listed) == {"ac-1", "Yq2345678901", "ac-4"}
    specs = [ItemSpec(item_id=f"i{n}", split="test", target_id=sid, interferer_ids=(), query="q", captions=(),
                      labels=(), rule="loudness", snr_db=())
             for n, sid in enumerate(frame["source_id"])]
    leaked = {leak.source_id for leak in find_leaks(specs, listed, source_aliases(frame))}
    assert leaked == listed_sources(frame, listed)


def test_excluded_ids_are_never_used(tmp_path, synth_manifest):
    probe = read_item_manifest(build_dataset(_config(tmp_path / "probe", synth_manifest)).manifest)
    banned = set(probe["target_id"][:5])
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("\n".join(sorted(banned)) + "\n")
    manifest = read_item_manifest(build_dataset(_config(tmp_path / "out", synth_manifest,
                                                        exclude_ids=exclude)).manifest)
    used = set(manifest["target_id"]) | {i for ids in manifest["interferer_ids"] for i in ids}
    assert not used & banned


def test_excluded_train_clips_never_reach_the_training_pool(tmp_path):
    from lassbench.manifests import read_manifest
    from lassbench.train_data import open_training_data

    corpus = synth_corpus(tmp_path / "c", duration=2.0, clips={"train": 28, "val": 14, "test": 14})
    sources = read_manifest(corpus, ["source_id", "split"])
    banned = set(sources.loc[sources["split"] == "train", "source_id"][:7])
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("\n".join(sorted(banned)) + "\n")
    out = build_dataset(_config(tmp_path / "out", corpus, num_items=4, exclude_ids=exclude)).out
    table = read_manifest(out / "sources.csv", ["source_id"])
    assert banned and not banned & set(table["source_id"])
    pool = set(open_training_data(str(out)).source.paths)  # source id -> path of every clip training remixes
    assert len(pool) > 0 and not banned & pool


def test_bad_options_are_one_line_errors(tmp_path, synth_manifest):
    cases = [
        (["--shard", "3/2"], "--shard"),
        (["--subtype", "MP3"], "--subtype"),
        (["--splits", "dev"], "no split dev"),
        (["--protocol", "dcase2024", "--target-lufs", "-20"], "--target-lufs: only for --protocol lassbench"),
        (["--sources", str(tmp_path / "nowhere")], "nowhere"),
        (["--num-items", "0"], "nothing to build"),
    ]
    for args, message in cases:
        completed = subprocess.run(
            [sys.executable, "-m", "lassbench", "build-dataset", "--sources", str(synth_manifest),
             "--out", str(tmp_path / "o"), "--quiet", *args], capture_output=True, text=True, timeout=120,
        )
        assert completed.returncode == 2, (args, completed.stderr)
        assert len(completed.stderr.strip().splitlines()) == 1 and message in completed.stderr, completed.stderr


def test_help_explains_every_option():
    completed = subprocess.run([sys.executable, "-m", "lassbench", "build-dataset", "--help"], capture_output=True,
                               text=True, timeout=60)
    for option in ("--sources", "--protocol", "--index", "--splits", "--num-items", "--target-lufs",
                   "--lufs-jitter", "--max-interferers", "--snr-min", "--snr-max", "--contrast-fraction",
                   "--subtype", "--workers", "--shard", "--exclude-ids", "--train-manifest", "--strict",
                   "--allow-missing", "--export"):
        assert option in completed.stdout


@pytest.mark.slow
def test_cli_with_no_arguments_builds_the_synth_benchmark(tmp_path):
    env = {**__import__("os").environ, "LASSBENCH_CACHE": str(tmp_path)}
    completed = subprocess.run([sys.executable, "-m", "lassbench", "build-dataset", "--quiet"], env=env,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "benchmarks" / "synth" / "manifest.csv").is_file()
