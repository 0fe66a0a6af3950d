"""Regenerate the figures of docs/evaluation.md's worked example by running its commands.

    python docs/figures/worked_example.py [--data BENCH] [--work DIR]

Runs `lassbench run lassnet|tag-queried --save-audio --limit 30` and `lassbench listen build ... --trials 10` on the
synth benchmark (default: the one `lassbench run` uses, under $LASSBENCH_CACHE), reads what they print and write,
stores the figures in docs/figures/worked_example.json and rewrites the marked block of docs/evaluation.md from
them. tests/test_docs_figures.py checks the page against the JSON, and (slow) the JSON against a fresh run.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "docs" / "figures" / "worked_example.json"
PAGE = ROOT / "docs" / "evaluation.md"
BEGIN, END = "<!-- figures: worked_example.json -->", "<!-- /figures -->"
SYSTEMS = ("lassnet", "tag-queried")
LIMIT, TRIALS = 30, 10
TIMED = ("listen_build_seconds",)  # figures that depend on the machine, not on the code

TEMPLATE = """\
The two runs printed SDRi {lassnet_sdri:.2f} dB [{lassnet_ci_low:.2f}, {lassnet_ci_high:.2f}] (lassnet) and \
{tag_sdri:.2f} dB [{tag_ci_low:.2f}, {tag_ci_high:.2f}] (tag-queried) over those {items} items — intervals that \
{overlap}. `listen build` wrote {trials} trials in {listen_build_seconds:.1f} s: {wav_files} WAV files of \
{stimulus_seconds:.1f} s ({bits}-bit, {rate_khz:g} kHz; per trial the open reference and {conditions} conditions — \
{condition_names}), {folder_mb:.1f} MB in all. In trial {trial} ("{query}") the mixture measured \
{mixture_lufs:.1f} LUFS and was turned {mixture_direction} {mixture_gain_abs:.2f} dB, lassnet's estimate \
{lassnet_lufs:.2f} LUFS and was turned {lassnet_direction} {lassnet_gain_abs:.2f} dB: every stimulus plays at \
{target_lufs:g} LUFS."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="built synth benchmark (default: the one `run` uses)")
    parser.add_argument("--work", default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--check", action="store_true", help="print the figures, write nothing")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="worked-example-"))
    figures = measure(work, args.data)
    print(json.dumps(figures, indent=2))
    if not args.check:
        FIGURES.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
        PAGE.write_text(render_page(PAGE.read_text(), figures))


def measure(work: Path, data: str | None) -> dict:
    """Run the example's commands in ``work`` and collect the figures the page quotes."""
    data = data or _default_benchmark()
    runs = {system: _run(system, data, work) for system in SYSTEMS}
    started = time.perf_counter()
    _lassbench(["listen", "build", *map(str, runs.values()), "--out", str(work / "listening"),
                "--trials", str(TRIALS), "--data", data], cwd=work)
    seconds = time.perf_counter() - started
    return {**_run_figures(runs), **_listen_figures(work / "listening"), "listen_build_seconds": round(seconds, 1)}


def _default_benchmark() -> str:
    code = "import lassbench; print(lassbench.default_benchmark())"
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def _lassbench(args: list[str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "lassbench", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"lassbench {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def _run(system: str, data: str, work: Path) -> Path:
    """The results folder of `lassbench run SYSTEM --save-audio --limit 30`, as the run prints it."""
    printed = _lassbench(["run", system, "--save-audio", "--limit", str(LIMIT), "--data", data], cwd=work)
    folder = re.search(r"^== .* -> (.+)$", printed, re.MULTILINE).group(1).strip()
    return (work / folder).resolve()


def _run_figures(runs: dict[str, Path]) -> dict:
    sdri = {s: json.loads((folder / "summary.json").read_text())["metrics"]["sdri"] for s, folder in runs.items()}
    lassnet, tag = sdri["lassnet"], sdri["tag-queried"]
    overlap = lassnet["ci95_low"] <= tag["ci95_high"] and tag["ci95_low"] <= lassnet["ci95_high"]
    return {
        "items": lassnet["n"], "lassnet_sdri": lassnet["mean"], "lassnet_ci_low": lassnet["ci95_low"],
        "lassnet_ci_high": lassnet["ci95_high"], "tag_sdri": tag["mean"], "tag_ci_low": tag["ci95_low"],
        "tag_ci_high": tag["ci95_high"],
        "overlap": ("overlap, the situation in which a listening test is worth its cost" if overlap
                    else "do not overlap: the listening test checks that listeners hear the difference"),
    }


def _listen_figures(folder: Path) -> dict:
    import soundfile as sf

    test = _test_description(folder)
    wavs = sorted(folder.rglob("*.wav"))
    info = sf.info(str(wavs[0]))
    first = test["trials"][0]
    levels = first["levels"]
    mixture, lassnet = levels["mixture"], levels["lassnet"]
    names = [s.get("condition", s["id"]) for s in first["stimuli"]]  # the key names each opaque stimulus id
    return {
        "trials": len(test["trials"]), "wav_files": len(wavs), "stimulus_seconds": info.frames / info.samplerate,
        "rate_khz": info.samplerate / 1000, "bits": int(info.subtype.removeprefix("PCM_")), "conditions": len(names),
        "condition_names": ", ".join(sorted(names)),
        "folder_mb": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6,
        "trial": first["trial_id"], "query": first["query"], "target_lufs": test["loudness_lufs"],
        "mixture_lufs": mixture["lufs_in"], "mixture_gain_abs": abs(mixture["gain_db"]),
        "mixture_direction": "up" if mixture["gain_db"] > 0 else "down",
        "lassnet_lufs": lassnet["lufs_in"], "lassnet_gain_abs": abs(lassnet["gain_db"]),
        "lassnet_direction": "up" if lassnet["gain_db"] > 0 else "down",
    }


def _test_description(folder: Path) -> dict:
    """What `listen build` recorded about the test (its key): in the folder or beside it."""
    for path in [*folder.glob("*.json"), *folder.parent.glob("*.json")]:
        content = json.loads(path.read_text())
        if isinstance(content, dict) and "trials" in content and "levels" in content["trials"][0]:
            return content
    raise SystemExit(f"{folder}: no test description (trials with levels) written by `listen build`")


def render_block(figures: dict) -> str:
    return TEMPLATE.format(**figures)


def render_page(page: str, figures: dict) -> str:
    """``page`` with the text between the markers replaced by the figures' paragraph (wrapped at 118)."""
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    return page[:start] + "\n" + _wrap(render_block(figures)) + "\n" + page[end:]


def _wrap(text: str, width: int = 118) -> str:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join([*lines, line])


if __name__ == "__main__":
    main()
