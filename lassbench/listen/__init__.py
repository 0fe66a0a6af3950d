"""A blind listening-test kit: a static MUSHRA-style page built from saved runs, and the scoring of its ratings.

* :mod:`lassbench.listen.stimuli` — hidden reference, 3.5 kHz / 7 kHz low-pass anchors, loudness matching, fades;
* :mod:`lassbench.listen.key` — opaque stimulus ids, the secret per-trial order, the key kept outside the folder;
* :mod:`lassbench.listen.build` — ``lassbench listen build``: runs + benchmark -> index.html, audio/ (+ the key);
* :mod:`lassbench.listen.page` — the page (HTML + JS; localStorage; CSV export in webMUSHRA's long format);
* :mod:`lassbench.listen.ratings` — the page's exports and webMUSHRA's mushra.csv, reunited with the key;
* :mod:`lassbench.listen.scoring` — ``lassbench listen score``: ITU-R BS.1534-3 post-screening, means with CIs,
  correlation of SDRi / SI-SDRi / CLAPScore with the listeners.
"""
