"""The static test page: one HTML file with its CSS and JS inline, the trials embedded as JSON.

It works from ``file://`` with no server: audio plays through ``<audio>`` elements (``fetch()`` is refused from
file://), started from a click (browsers block audio until a user gesture); answers are kept in ``localStorage``
after every change, so a closed tab or a reload loses nothing; "Export ratings" downloads a CSV in webMUSHRA's long
format (one row per rated stimulus)::

    test_id,session,listener,trial_id,rating_stimulus,rating_score,rating_time

``rating_time`` is the milliseconds the listener spent on the trial (all visits), as webMUSHRA records it.
The page is blind: it knows stimuli only by their opaque ids (the key that names their conditions stays with the
experimenter), shown as letters in the key's per-trial order. Text from data (title, queries) reaches the page
only as escaped HTML or as JSON with ``< > &`` and U+2028/2029 escaped, substituted in one pass; every exported CSV
cell that a spreadsheet would run as a formula gets a leading apostrophe, the rule of
:func:`lassbench.manifests.write_manifest_csv`, which ``listen score`` undoes.
"""

from __future__ import annotations

import html
import json
import re

RATINGS_COLUMNS = ("test_id", "session", "listener", "trial_id", "rating_stimulus", "rating_score", "rating_time")
_PLACEHOLDER = re.compile(r"__(TITLE|TEST_JSON)__")
# inside <script>, "<!--", "<script" and "</script" change how the HTML parser reads the rest; U+2028/2029 end
# lines in pre-2019 JavaScript. JSON string escapes keep the value the same.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                              "\u2029": "\\u2029"})


def script_json(value) -> str:
    """JSON that can sit inside a ``<script>`` element whatever its strings contain."""
    return json.dumps(value, ensure_ascii=False).translate(_SCRIPT_SAFE)


def render_page(test: dict) -> str:
    """index.html for ``test`` (the key): only what listeners need, stimuli by their opaque ids."""
    public = {
        "test_id": test["test_id"],
        "title": test["title"],
        "columns": list(RATINGS_COLUMNS),
        "trials": [{"trial_id": t["trial_id"], "query": t["query"], "reference": t["reference"],
                    "stimuli": [{"id": s["id"], "file": s["file"]} for s in t["stimuli"]]} for t in test["trials"]],
    }
    values = {"TITLE": html.escape(test["title"]), "TEST_JSON": script_json(public)}
    # one pass: text substituted for one placeholder is never searched for the other
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], _TEMPLATE)


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>__TITLE__</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 56rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  .query { font-size: 1.25rem; padding: .6rem .8rem; background: #eef3fb; border-left: 4px solid #3b6fb6; }
  table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
  td { padding: .35rem .5rem; border-bottom: 1px solid #ddd; }
  td:first-child { width: 4rem; } td:last-child { width: 3rem; }
  input[type=range] { width: 100%; }
  button { font-size: 1rem; padding: .35rem .9rem; margin: .15rem; cursor: pointer; }
  button.playing { background: #3b6fb6; color: #fff; }
  .score { width: 3rem; text-align: right; font-variant-numeric: tabular-nums; }
  .scale { display: flex; justify-content: space-between; color: #777; font-size: .8rem; }
  .hidden { display: none; }
  #status { color: #555; min-height: 1.2rem; }
</style>
</head>
<body>
<h1>__TITLE__</h1>
<section id="start">
  <p>Each page plays a <b>reference</b> (the sound the query describes, on its own) and several versions of it
  produced by separation systems, in random order. Rate how well each version matches the reference on a scale
  from 0 (bad) to 100 (excellent). One of the versions <i>is</i> the reference: give it 100. Listen in any order,
  as often as you like, with headphones in a quiet room.</p>
  <p><label>Your listener id: <input id="listener" autocomplete="off"></label>
  <button id="begin">Start</button></p>
</section>
<section id="trial" class="hidden">
  <p id="progress"></p>
  <p class="query">Query: <span id="query"></span></p>
  <p><button id="play-reference">Reference</button> <button id="stop">Stop</button></p>
  <table id="conditions"></table>
  <p><button id="prev">Previous</button> <button id="next">Next</button></p>
</section>
<section id="end" class="hidden">
  <p>Thank you: all trials are rated. Download your ratings and send the file to the experimenter.</p>
</section>
<p><button id="export">Export ratings (CSV)</button></p>
<p id="status"></p>
<div id="players"></div>
<script>
"use strict";
const TEST = __TEST_JSON__;
const KEY = "lassbench-listen:" + TEST.test_id;
const $ = (id) => document.getElementById(id);
let state = load() || {listener: "", session: newId(), trial: 0, ratings: {}, times: {}, rated: {}};
let shownAt = null;
let audioContext = null;

function newId() { return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10); }
function load() { try { return JSON.parse(localStorage.getItem(KEY)); } catch (e) { return null; } }
function save() { localStorage.setItem(KEY, JSON.stringify(state)); }
function say(text) { $("status").textContent = text; }

function unlockAudio() {
  // Autoplay policies block audio until a user gesture: resume a context inside the click that starts the test.
  const Context = window.AudioContext || window.webkitAudioContext;
  if (Context && !audioContext) { audioContext = new Context(); }
  if (audioContext && audioContext.state === "suspended") { audioContext.resume(); }
}

function player(file) {
  const id = "audio-" + file.replace(/[^A-Za-z0-9]/g, "_");
  let el = $(id);
  if (!el) {
    el = document.createElement("audio");
    el.id = id; el.src = file; el.preload = "auto";
    $("players").appendChild(el);
  }
  return el;
}

function stopAll() {
  for (const el of document.querySelectorAll("audio")) { el.pause(); }
  for (const b of document.querySelectorAll("button.playing")) { b.classList.remove("playing"); }
}

function play(file, button) {
  const current = Array.from(document.querySelectorAll("audio")).find((el) => !el.paused);
  const position = current ? current.currentTime : 0;  // switching keeps the position, as MUSHRA players do
  stopAll();
  const el = player(file);
  try { el.currentTime = position < (el.duration || Infinity) ? position : 0; } catch (e) { /* not loaded */ }
  button.classList.add("playing");
  el.onended = () => button.classList.remove("playing");
  el.play().catch((err) => say("playback failed: " + err.message + " (click a play button again)"));
}

function leaveTrial() {
  if (shownAt === null) { return; }
  const tid = TEST.trials[state.trial].trial_id;
  state.times[tid] = (state.times[tid] || 0) + Math.round(performance.now() - shownAt);
  shownAt = performance.now();
  save();
}

function showTrial(index) {
  leaveTrial();
  stopAll();
  state.trial = Math.max(0, Math.min(index, TEST.trials.length - 1));
  save();
  const trial = TEST.trials[state.trial];
  const ratings = state.ratings[trial.trial_id] || {};
  $("start").classList.add("hidden");
  $("end").classList.add("hidden");
  $("trial").classList.remove("hidden");
  $("progress").textContent = "Trial " + (state.trial + 1) + " of " + TEST.trials.length;
  $("query").textContent = trial.query;
  $("play-reference").onclick = (ev) => play(trial.reference, ev.target);
  const table = $("conditions");
  table.innerHTML = "";
  const scale = table.insertRow();
  scale.insertCell();
  scale.insertCell().innerHTML = '<div class="scale"><span>0 bad</span><span>20 poor</span><span>40 fair</span>' +
    '<span>60 good</span><span>80 excellent 100</span></div>';
  scale.insertCell();
  trial.stimuli.forEach((stimulus, k) => {
    const row = table.insertRow();
    row.dataset.stimulus = stimulus.id;
    const button = document.createElement("button");
    button.textContent = String.fromCharCode(65 + k);
    button.className = "play";
    button.onclick = () => play(stimulus.file, button);
    const slider = document.createElement("input");
    slider.type = "range"; slider.min = 0; slider.max = 100; slider.step = 1;
    slider.value = stimulus.id in ratings ? ratings[stimulus.id] : 0;
    const score = document.createElement("span");
    score.className = "score"; score.textContent = slider.value;
    slider.oninput = () => {
      score.textContent = slider.value;
      state.ratings[trial.trial_id] = state.ratings[trial.trial_id] || {};
      state.ratings[trial.trial_id][stimulus.id] = Number(slider.value);
      state.rated[trial.trial_id] = true;
      save();
    };
    row.insertCell().appendChild(button);
    row.insertCell().appendChild(slider);
    row.insertCell().appendChild(score);
  });
  $("prev").disabled = state.trial === 0;
  $("next").textContent = state.trial === TEST.trials.length - 1 ? "Finish" : "Next";
  shownAt = performance.now();
}

function csvCell(value) {
  // a spreadsheet runs a cell starting with = + - @ tab or CR as a formula: an apostrophe keeps it text
  // (numbers excepted), as lassbench's own CSV writer does; listen score removes one apostrophe again, so text
  // that really starts with apostrophes before such a character gets one more
  let text = String(value);
  if (/^'*[=+\\-@\\t\\r]/.test(text) && !/^[+-]?(\\d+\\.?\\d*|\\.\\d+)([eE][+-]?\\d+)?$/.test(text)) {
    text = "'" + text;
  }
  return /[",\\n\\r]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}

function ratingsCsv() {
  const lines = [TEST.columns.join(",")];
  for (const trial of TEST.trials) {
    if (!state.rated[trial.trial_id]) { continue; }
    const ratings = state.ratings[trial.trial_id] || {};
    for (const stimulus of trial.stimuli) {
      const score = stimulus.id in ratings ? ratings[stimulus.id] : 0;
      const row = [TEST.test_id, state.session, state.listener, trial.trial_id, stimulus.id, score,
                   state.times[trial.trial_id] || 0];
      lines.push(row.map(csvCell).join(","));
    }
  }
  return lines.join("\\n") + "\\n";
}

function exportRatings() {
  leaveTrial();
  const rated = TEST.trials.filter((t) => state.rated[t.trial_id]).length;
  const blob = new Blob([ratingsCsv()], {type: "text/csv"});
  const link = document.createElement("a");
  const who = (state.listener || "anonymous").replace(/[^A-Za-z0-9_-]/g, "_");
  link.href = URL.createObjectURL(blob);
  link.download = "ratings_" + who + "_" + state.session + ".csv";
  document.body.appendChild(link);
  link.click();
  link.remove();
  say("exported " + rated + " rated trial(s) of " + TEST.trials.length);
}

$("begin").onclick = () => {
  const listener = $("listener").value.trim();
  if (!listener) { say("enter a listener id first"); return; }
  unlockAudio();
  state.listener = listener;
  save();
  showTrial(state.trial);
};
$("stop").onclick = stopAll;
$("prev").onclick = () => showTrial(state.trial - 1);
$("next").onclick = () => {
  if (state.trial === TEST.trials.length - 1) {
    leaveTrial(); shownAt = null; stopAll();
    $("trial").classList.add("hidden"); $("end").classList.remove("hidden");
  } else { showTrial(state.trial + 1); }
};
$("export").onclick = exportRatings;
$("listener").value = state.listener;
save();
</script>
</body>
</html>
"""
