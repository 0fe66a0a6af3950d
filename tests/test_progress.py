"""The ticking status line shown while a model loads."""

from __future__ import annotations

import io
import time

from lassbench.progress import ticking


def test_a_long_step_ticks_its_seconds_and_erases_the_line_when_done():
    stream = io.StringIO()
    with ticking("loading lassnet", enabled=True, stream=stream, interval=0.05):
        time.sleep(0.3)
    text = stream.getvalue()
    assert "\rloading lassnet… 0 s" in text
    assert text.endswith("\r") and text.rstrip("\r").endswith(" " * len("loading lassnet… 0 s"))


def test_a_quick_step_prints_nothing():
    stream = io.StringIO()
    with ticking("loading lassnet", enabled=True, stream=stream, interval=5.0):
        pass
    assert stream.getvalue() == ""


def test_only_a_terminal_gets_the_line_unless_asked():
    stream = io.StringIO()  # not a terminal: what a log file or a pipe is
    with ticking("loading lassnet", stream=stream, interval=0.05):
        time.sleep(0.2)
    assert stream.getvalue() == ""


def test_a_nested_step_shows_the_outer_line_alone():
    outer, inner = io.StringIO(), io.StringIO()
    with ticking("loading lassnet", enabled=True, stream=outer, interval=0.05):
        with ticking("loading the text encoder", enabled=True, stream=inner, interval=0.05):
            time.sleep(0.2)
    assert "loading lassnet" in outer.getvalue() and inner.getvalue() == ""
