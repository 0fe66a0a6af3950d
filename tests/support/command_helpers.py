"""Test helpers for commands: `lassbench train` in process, and recipe scripts run with `lassbench` and `python`
stubbed (each logs its arguments; `lassbench train` leaves an empty model.pt and log.csv in its --out; `python -c
...default_benchmark...` prints ``benchmark``)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

from .paths import REPO


def load_script(path: Path):
    """A repository script (docs/figures/*.py, recipes/*/*.py) imported as a module, to call its functions."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


def run_recipe(recipe: str, tmp_path: Path, args: list[str], *, env: dict[str, str] | None = None,
               benchmark: str = "/data") -> tuple[Path, list[str]]:
    """Run ``recipes/<recipe>/run.sh ARGS`` from a copy of the repository; (its root, the logged calls)."""
    work = tmp_path / "repo"
    (work / "recipes" / recipe).mkdir(parents=True)
    shutil.copy(REPO / "recipes" / recipe / "run.sh", work / "recipes" / recipe / "run.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    _stub(bin_dir, "lassbench", f'echo "lassbench $*" >> {calls}\n'
          'if [ "$1" = train ]; then out=$(echo "$@" | sed "s/.*--out \\([^ ]*\\).*/\\1/"); mkdir -p "$out"; '
          'touch "$out/model.pt" "$out/log.csv"; fi\n')
    _stub(bin_dir, "python", f'echo "python $*" >> {calls}\n'
          f'case "$*" in *default_benchmark*) echo {benchmark} ;; esac\n')
    full_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **(env or {})}
    subprocess.run(["bash", f"recipes/{recipe}/run.sh", *args], cwd=work, env=full_env, check=True,
                   capture_output=True)
    return work, calls.read_text().splitlines()


def train_cli(args, capsys) -> tuple[int, str]:
    """``lassbench train ARGS`` in this process: (exit code, stderr)."""
    from lassbench.cli import main

    try:
        main(["train", *map(str, args)])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def cli_exit_code(args: list[str]) -> int:
    """``lassbench ARGS`` in this process: its exit code (0 when it returns without exiting)."""
    from lassbench.cli import main

    try:
        main(args)
    except SystemExit as exc:
        return exc.code or 0
    return 0


def run_oracle_on_a_tiny_benchmark(tmp_path: Path, capsys, *extra: object) -> tuple[Path, Path]:
    """``lassbench run oracle-irm`` on a 3-item benchmark in batches of 2, estimates kept, with ``extra`` options
    (a reference-free scorer's); (its result folder, the benchmark)."""
    from lassbench.cli import main

    from .tiny_benchmark import build_tiny_benchmark

    bench = build_tiny_benchmark(tmp_path / "bench", items=3)
    args = ["run", "oracle-irm", "--data", bench, "--out", tmp_path / "out", "--workers", 0, "--batch-size", 2,
            "--save-audio", *extra]
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    return tmp_path / "out" / "synth-mini" / "oracle-irm", bench
