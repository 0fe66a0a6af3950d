"""Committed results reproduce from a fresh cache; caches follow the code that makes them; faults leave no debris."""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from lassbench.audio import TEMP_MARK, temp_prefix
from lassbench.build import BuildConfig, build_dataset
from lassbench.corpora.synth import cache, corpus_key, generator_digest, synth_corpus
from lassbench.manifests import read_item_manifest, read_manifest
from lassbench.ready import _drop_stale_synth_build, render_digest

from support.paths import REPO

COMMITTED = REPO / "leaderboards" / "results"


def _cli(*args: str, cache: Path, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "LASSBENCH_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "lassbench", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _temp_of(path: Path, pid: int) -> Path:
    """The name lassbench's atomic writers give ``path``'s temp file when process ``pid`` writes it."""
    prefix = temp_prefix(path)
    prefix = prefix[: prefix.rindex(f"-{os.getpid()}-")] + f"-{pid}-"
    return path.parent / f"{prefix}ab12cd{TEMP_MARK}{path.suffix}"


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(p) for p in (task / "children").read_text().split()}
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# ----------------------------------------------------------------------------------------- cache keys


SYNTH_PACKAGE = Path(cache.__file__).parent


def _edited_synth_cache(folder: Path, name: str, edit, monkeypatch):
    """The ``cache`` module of a copy of the synth package in which file ``name`` went through ``edit``."""
    shutil.copytree(SYNTH_PACKAGE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / name).write_text(edit((folder / name).read_text()))
    spec = importlib.util.spec_from_file_location(f"synth_cache_{folder.name}", folder / "cache.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_the_corpus_key_is_a_digest_of_the_generator_code(tmp_path, monkeypatch):
    module = _edited_synth_cache(tmp_path / "edited", "sounds.py", lambda source: source.replace(
        "click /= np.abs(click).max() + 1e-12", "click /= np.abs(click).max() + 2e-12"), monkeypatch)
    assert module.generator_digest() != generator_digest()  # one constant changed: another cache
    assert generator_digest() in corpus_key() and corpus_key() != module.corpus_key()
    assert corpus_key(seed=1) != corpus_key() and corpus_key(clips={"val": 3}) != corpus_key()


def test_an_edit_of_any_file_of_the_synth_package_makes_another_cache(tmp_path, monkeypatch):
    names = sorted(p.name for p in SYNTH_PACKAGE.iterdir() if p.suffix in (".py", ".json"))
    assert {"sounds.py", "classes.json", "captions.py", "clips.py", "cache.py"} <= set(names)
    for name in names:
        module = _edited_synth_cache(tmp_path / name.replace(".", "_"), name, lambda source: source + "\n", monkeypatch)
        assert module.generator_digest() != generator_digest(), name


def test_generation_does_not_depend_on_the_worker_layout(tmp_path):
    pooled = read_manifest(synth_corpus(tmp_path / "pooled", clips={"val": 110}), ["sha1"])  # 2 chunks: a pool
    single = cache._generate_chunk(tmp_path / "single", ("val", 95, 110), sample_rate=16000, duration=4.0, seed=0)
    assert {r["source_id"]: r["sha1"] for r in single} == dict(zip(pooled["source_id"][95:], pooled["sha1"][95:],
                                                                   strict=True))


def test_a_cache_made_by_other_code_is_not_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("LASSBENCH_CACHE", str(tmp_path))
    first = synth_corpus(clips={"val": 2})
    (first.parent / "audio" / "synth-val-00000.wav").write_bytes(b"stale")
    monkeypatch.setattr(cache, "generator_digest", lambda: "0123456789ab")
    second = synth_corpus(clips={"val": 2})
    assert second != first and "0123456789ab" in second.parent.name
    assert sf.info(str(second.parent / "audio" / "synth-val-00000.wav")).frames == 64000


def test_the_default_benchmark_built_from_another_corpus_or_by_other_code_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("LASSBENCH_CACHE", str(tmp_path))
    out = tmp_path / "benchmarks" / "synth"
    (out / ".lassbench").mkdir(parents=True)
    (out / "manifest.csv").write_text("id,query\n")
    current = str(tmp_path / "synth" / corpus_key() / "manifest.csv")
    (out / ".lassbench" / "build.json").write_text(json.dumps({"sources": current}))
    (out / ".lassbench" / "render.json").write_text(json.dumps({"render_digest": render_digest()}))
    _drop_stale_synth_build(out)
    assert (out / "manifest.csv").is_file()  # made from today's corpus by today's code: kept
    (out / ".lassbench" / "render.json").write_text(json.dumps({"render_digest": "0123456789ab"}))
    _drop_stale_synth_build(out)
    assert not out.exists()  # rendered by other code
    (out / ".lassbench").mkdir(parents=True)
    (out / ".lassbench" / "render.json").write_text(json.dumps({"render_digest": render_digest()}))
    (out / ".lassbench" / "build.json").write_text(json.dumps({"sources": "/old/synth/v1-sr16000/manifest.csv"}))
    _drop_stale_synth_build(out)
    assert not out.exists()


# ----------------------------------------------------------------------------------------- debris after kill -9


def _kill_9_and_survivors(parent: subprocess.Popen, workers: set[int], wait: float = 10.0) -> list[int]:
    """SIGKILL ``parent``, then give its ``workers`` ``wait`` seconds to exit; the pids still alive after that."""
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.05)
    return [pid for pid in workers if _alive(pid)]


@pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2,
                    reason="needs /proc and a process pool (2+ CPUs)")
def test_kill_9_during_corpus_generation_orphans_no_worker_and_a_rerun_removes_its_temp_folder(tmp_path,
                                                                                               monkeypatch):
    cache = tmp_path / "cache"
    script = textwrap.dedent("""
        from lassbench.corpora.synth import synth_corpus
        synth_corpus(clips={"train": 1200})
    """)
    env = {**os.environ, "LASSBENCH_CACHE": str(cache)}
    parent = subprocess.Popen([sys.executable, "-c", script], env=env)
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    temps: list[Path] = []
    while time.monotonic() < deadline:  # kill once workers have written clips into the temp folder
        temps = list((cache / "synth").glob(f".*{TEMP_MARK}"))
        workers |= _children(parent.pid)
        if temps and len(list(temps[0].glob("audio/*.wav"))) >= 4 and len(workers) >= 2:
            break
        time.sleep(0.05)
    else:
        parent.kill()
        pytest.fail("generation never got going")
    workers |= _children(parent.pid)
    assert not _kill_9_and_survivors(parent, workers), "pool workers outlived their killed parent"
    assert temps[0].is_dir() and f"-{parent.pid}-" in temps[0].name  # the debris names its dead owner
    monkeypatch.setenv("LASSBENCH_CACHE", str(cache))
    synth_corpus(clips={"val": 2})  # any later generation in that cache sweeps it
    assert not temps[0].exists()
    assert not list((cache / "synth").glob(".*"))


def test_a_rerun_of_build_removes_temp_files_of_killed_builds_and_keeps_live_ones(tmp_path):
    sources = synth_corpus(tmp_path / "c", clips={"val": 14, "test": 14})
    config = BuildConfig(out=tmp_path / "out", sources=str(sources), num_items=4, progress=False)
    build_dataset(config)
    out = tmp_path / "out"
    dead = _dead_pid()
    stale = [_temp_of(out / "interferers" / "val-000001_0.wav", dead),
             _temp_of(out / "mixture" / "val-000000.wav", dead)]
    live = _temp_of(out / "target" / "val-000000.wav", os.getpid())
    for path in [*stale, live]:
        path.write_bytes(b"partial")
    build_dataset(config)
    assert not any(p.exists() for p in stale)
    assert live.exists()  # a running writer's (here: this process's) temp is not touched


@pytest.mark.slow  # ~10 s
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")
def test_kill_9_during_a_two_worker_build_orphans_no_worker_and_the_rerun_leaves_no_temp_file(tmp_path):
    sources = synth_corpus(tmp_path / "c", clips={"val": 14, "test": 14})
    out = tmp_path / "out"
    args = ["build-dataset", "--sources", str(sources), "--out", str(out), "--num-items", "14", "--workers", "2",
            "--quiet"]
    env = {**os.environ, "LASSBENCH_CACHE": str(tmp_path / "cache")}
    parent = subprocess.Popen([sys.executable, "-m", "lassbench", *args], env=env)
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and parent.poll() is None:
        workers |= _children(parent.pid)
        if len(list((out / ".lassbench" / "items").glob("*.json"))) >= 2 and len(workers) >= 2:
            break
        time.sleep(0.02)
    if parent.poll() is not None:
        pytest.skip("the build finished before it could be killed")
    assert not _kill_9_and_survivors(parent, workers), "build workers outlived their killed parent"
    result = build_dataset(BuildConfig(out=out, sources=str(sources), num_items=14, workers=2, progress=False))
    assert result.manifest is not None and result.reused >= 2
    assert not [p for p in out.rglob("*") if TEMP_MARK in p.name or p.name.endswith(".tmp.wav")]


# ----------------------------------------------------------------------------------------- fresh install


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory):
    """README's first steps from an EMPTY cache: `lassbench build-dataset`, then `lassbench run mixture`."""
    root = tmp_path_factory.mktemp("fresh")
    built = _cli("build-dataset", "--quiet", cache=root / "cache", cwd=root)
    assert built.returncode == 0, built.stderr[-2000:]
    done = _cli("run", "mixture", "--out", str(root / "results"), cache=root / "cache", cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rebuilding" not in done.stderr  # run reuses what build-dataset made with the same code
    return root


@pytest.mark.slow
def test_a_fresh_cache_reproduces_the_committed_per_item_results(fresh_run):
    committed = read_manifest(COMMITTED / "synth" / "mixture" / "per_item.csv", ["item"]).set_index("item")
    fresh = read_manifest(fresh_run / "results" / "synth" / "mixture" / "per_item.csv", ["item"]).set_index("item")
    assert list(fresh.index) == list(committed.index)
    queries = (fresh["query"] != committed["query"]).sum()
    numbers = {m: np.abs(fresh[m].astype(float) - committed[m].astype(float)) for m in ("sdr", "si_sdr", "snr_db")}
    differing = int(sum(values > 1e-4 for values in numbers.values()).astype(bool).sum())
    assert queries == 0 and differing == 0, (
        f"{differing} of {len(committed)} items score differently and {queries} queries differ from the committed "
        "leaderboards/results/synth: regenerate the committed results (bash recipes/synth/run.sh)"
    )


@pytest.mark.slow
def test_readme_score_your_own_system_ranks_it_beside_the_committed_rows(fresh_run):
    cache, root = fresh_run / "cache", fresh_run
    manifest = cache / "benchmarks" / "synth" / "manifest.csv"
    frame = read_item_manifest(manifest)
    estimates = root / "my_outputs"
    estimates.mkdir(exist_ok=True)
    bench = manifest.parent
    for item in frame.loc[frame["split"] == "test", "id"]:  # a "system": half-way from the mixture to the target
        mixture, rate = sf.read(bench / "mixture" / f"{item}.wav", dtype="float32")
        target, _ = sf.read(bench / "target" / f"{item}.wav", dtype="float32")
        sf.write(estimates / f"{item}.wav", 0.5 * (mixture + target), rate, subtype="FLOAT")
    results = root / "leaderboards" / "results"
    shutil.copytree(COMMITTED, results, dirs_exist_ok=True)
    without_split = _cli("evaluate", "--manifest", str(manifest), "--estimates", str(estimates),
                         "--out", str(results / "synth" / "my-system"), cache=cache, cwd=root)
    assert without_split.returncode == 2 and "val-000000.wav" in without_split.stderr  # val has no estimates
    scored = _cli("evaluate", "--manifest", str(manifest), "--split", "test", "--estimates", str(estimates),
                  "--out", str(results / "synth" / "my-system"), cache=cache, cwd=root)
    assert scored.returncode == 0, scored.stderr[-2000:]
    ranked = _cli("leaderboard", "--results", str(results), "--out", str(root / "leaderboards"), "--no-plots",
                  cache=cache, cwd=root)
    assert ranked.returncode == 0, ranked.stderr[-2000:]
    assert "not comparable" not in ranked.stderr
    table = pd.read_csv(root / "leaderboards" / "synth.csv", dtype=str, keep_default_na=False)
    mine = table[table["system"] == "my-system"].iloc[0]
    assert mine["rank"] != "" and mine["n_items"] == "300" and mine["notes"] == ""
    assert (root / "leaderboards" / "leaderboard.md").is_file() and not (root / "docs").exists()
