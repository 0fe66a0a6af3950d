"""The listening-test page end to end in a real headless Chromium (Debian's chromium + chromedriver, via selenium):
load from file://, start, play audio after a click, move sliders with the keyboard, reload (answers survive in
localStorage), export the CSV through the browser's download, and score it with ``lassbench listen score``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_listen import make_runs  # tests/ is on sys.path (pytest rootdir-relative import)

from lassbench.listen.build import ListenConfig, build_test
from lassbench.listen.scoring import read_test
from lassbench.listen.stimuli import HIDDEN_REFERENCE, LOW_ANCHOR

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver;"
                              " .ci/run installs them)"),
]


def browser(download_dir: Path, profile: Path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_page_plays_rates_exports_and_the_export_scores(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    bench, runs = make_runs(tmp_path, n_items=3)
    page = build_test(ListenConfig(runs=[str(r) for r in runs], out=str(tmp_path / "page"), data=str(bench),
                                   trials=2))
    test = read_test(tmp_path / "page")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = browser(downloads, tmp_path / "profile")
    try:
        driver.get(page.resolve().as_uri())
        driver.find_element(By.ID, "listener").send_keys("ann")
        driver.find_element(By.ID, "begin").click()
        assert driver.find_element(By.ID, "query").text == test["trials"][0]["query"]

        # audio starts from a click (the user gesture autoplay policies ask for) and advances
        driver.find_elements(By.CSS_SELECTOR, "button.play")[0].click()
        wait_for(lambda: driver.execute_script(
            "const a = Array.from(document.querySelectorAll('audio')).find(e => !e.paused);"
            "return a ? a.currentTime > 0.05 : false;"), what="audio to play")
        driver.find_element(By.ID, "stop").click()

        expected = {}
        for index, trial in enumerate(test["trials"]):
            for row in driver.find_elements(By.CSS_SELECTOR, "#conditions tr[data-stimulus]"):
                stimulus = row.get_attribute("data-stimulus")
                slider = row.find_element(By.CSS_SELECTOR, "input[type=range]")
                if stimulus == HIDDEN_REFERENCE:
                    slider.send_keys(Keys.END)  # 100
                    expected[(trial["trial_id"], stimulus)] = 100
                elif stimulus == LOW_ANCHOR:
                    slider.send_keys(Keys.HOME, *[Keys.ARROW_RIGHT] * 10)  # 10
                    expected[(trial["trial_id"], stimulus)] = 10
                else:
                    slider.send_keys(Keys.HOME, *[Keys.ARROW_RIGHT] * (40 + index))
                    expected[(trial["trial_id"], stimulus)] = 40 + index
            if index == 0:  # answers survive a reload (localStorage), and the page resumes where it was
                driver.refresh()
                driver.find_element(By.ID, "begin").click()
                ref_row = driver.find_element(By.CSS_SELECTOR, f"#conditions tr[data-stimulus='{HIDDEN_REFERENCE}']")
                assert ref_row.find_element(By.CSS_SELECTOR, "input").get_attribute("value") == "100"
            driver.find_element(By.ID, "next").click()
        assert "Thank you" in driver.find_element(By.ID, "end").text

        driver.find_element(By.ID, "export").click()
        exported = wait_for(lambda: [p for p in downloads.glob("ratings_ann_*.csv")], what="the CSV download")[0]
    finally:
        driver.quit()

    import pandas as pd

    rows = pd.read_csv(exported, dtype={"rating_score": float})
    assert list(rows.columns) == ["test_id", "session", "listener", "trial_id", "rating_stimulus", "rating_score",
                                  "rating_time"]
    assert len(rows) == sum(len(t["stimuli"]) for t in test["trials"])
    assert {(r.trial_id, r.rating_stimulus): r.rating_score for r in rows.itertuples()} == expected
    assert (rows["test_id"] == test["test_id"]).all() and (rows["listener"] == "ann").all()
    assert (rows["rating_time"] > 0).all()

    result = subprocess.run([sys.executable, "-m", "lassbench", "listen", "score", str(exported), "--test",
                             str(tmp_path / "page"), "--out", str(tmp_path / "scored")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "assessors: 1 (0 excluded" in result.stdout
    assert "hidden_reference *" in result.stdout
    assert (tmp_path / "scored" / "listening_summary.json").is_file()
