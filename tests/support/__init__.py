"""Helpers shared by the tests (not collected by pytest): tests import them as ``support.<module>``.

``tests/`` is on ``sys.path`` under pytest (the directory of the root ``conftest.py``); scripts outside pytest that
reuse a helper put it there themselves (``perf/``, the golden scripts under ``tests/golden/``).
"""
