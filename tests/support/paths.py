"""Where things are, for tests in any folder under tests/: the repository, the goldens, the worker scripts."""

from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
TESTS = SUPPORT.parent
REPO = TESTS.parent
GOLDEN = TESTS / "golden"

# Scripts a test starts as their own processes (one per rank): they are not collected by pytest.
DDP_GRAD_WORKER = SUPPORT / "ddp_grad_worker.py"
DDP_TRAIN_WORKER = SUPPORT / "ddp_train_worker.py"
