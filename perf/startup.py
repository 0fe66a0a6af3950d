"""What a command pays before its first item: importing `lassbench.run`, loading the shipped model, and resolving the
embedded default benchmark (warm cache), each timed in a fresh interpreter.

    python perf/startup.py [--repeats 5] [--model lassnet] [--before PATH]

Each repeat starts a new Python process that times, with ``resource.getrusage`` (CPU: user + system) and a wall
clock, three steps in order: ``import lassbench.run``; ``lassbench.run._load_system(MODEL, None, "cpu")``; and
``lassbench.ready.resolve_benchmark(None)`` (the embedded synth benchmark, built beforehand so only the warm path is
timed). ``--before PATH`` puts another checkout first on ``PYTHONPATH`` and alternates the two versions repeat by
repeat, so a burst of load hits both alike; each version keeps its own cache (``$LASSBENCH_CACHE`` under a temporary
folder, warmed once untimed), since two versions' synth generators would otherwise each find the other's build stale.
Children run from a temporary folder so that ``python -c`` does not import the checkout it was started in. Prints
date, machine and load, then the medians per version.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time

def clock():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, time.perf_counter()

steps = {}
cpu0, wall0 = clock()
import lassbench.run
cpu1, wall1 = clock()
steps["import lassbench.run"] = (cpu1 - cpu0, wall1 - wall0)
lassbench.run._load_system(sys.argv[1], None, "cpu")
cpu2, wall2 = clock()
steps["load the shipped model"] = (cpu2 - cpu1, wall2 - wall1)
from lassbench.ready import resolve_benchmark
resolve_benchmark(None, lambda line: None)
cpu3, wall3 = clock()
steps["resolve the default benchmark (warm)"] = (cpu3 - cpu2, wall3 - wall2)
steps["total"] = (cpu3 - cpu0, wall3 - wall0)
print(json.dumps(steps))
"""


_WARM = "from lassbench.ready import resolve_benchmark; resolve_benchmark(None, lambda line: None)"


def _python(code: str, args: list[str], pythonpath: str, cache: Path, cwd: Path) -> str:
    env = dict(os.environ, LASSBENCH_CACHE=str(cache))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd, check=True, capture_output=True,
                         text=True)
    return out.stdout


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="lassnet")
    parser.add_argument("--before", default=None, help="another checkout to time alternately (its repository root)")
    args = parser.parse_args()

    here = str(Path(__file__).resolve().parents[1])
    versions = {"this version": here} if args.before is None else {"before": args.before, "this version": here}
    scratch = Path(tempfile.mkdtemp(prefix="lassbench-startup-"))
    caches = {name: scratch / f"cache-{i}" for i, name in enumerate(versions)}
    for name, path in versions.items():  # build each version's default benchmark once: only the warm path is timed
        print(f"# warming the cache of {name} ({path})", file=sys.stderr)
        _python(_WARM, [], path, caches[name], scratch)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, {os.cpu_count()} CPU(s), "
          f"Python {platform.python_version()}; load {_load()} before")
    runs: dict[str, list[dict[str, tuple[float, float]]]] = {name: [] for name in versions}
    for _ in range(args.repeats):
        for name, path in versions.items():
            out = _python(_CHILD, [args.model], path, caches[name], scratch)
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
    print(f"# load {_load()} after; medians of {args.repeats} fresh processes per version\n")
    print("| version | step | CPU s | wall s |")
    print("|---|---|---|---|")
    for name, samples in runs.items():
        for step in samples[0]:
            cpu = statistics.median(s[step][0] for s in samples)
            wall = statistics.median(s[step][1] for s in samples)
            print(f"| {name} | {step} | {cpu:.2f} | {wall:.2f} |")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
