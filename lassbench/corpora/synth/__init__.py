"""``synth``: the embedded, procedurally generated corpus every command can use offline.

:func:`synth_corpus` generates (once, then reuses from the cache) a set of captioned clips in the source-manifest
format of :mod:`lassbench.manifests`, with three splits drawn from disjoint seeds. Every clip belongs to one of the
classes listed by :func:`synth_classes` and has attributes that are *audible*:

* ``pitch``: ``low`` or ``high`` — class-specific, non-overlapping ranges (e.g. an alarm beeps at 250-400 Hz or
  1.5-2.8 kHz). The gap (lowest high pitch / highest low pitch) is 3.3-4.3x for seven classes and 1.54-2.78x for six
  (Speech 1.54, Bird 1.75, Dog 1.75, Engine 2.0, Whistle 2.25, Typing 2.78); Rain has no pitch (its noise band is
  300-1500 Hz vs 2.5-7 kHz);
* ``tempo``: ``slow`` or ``fast`` — the event / modulation rate; the gap (lowest fast / highest slow rate) is 3.0-5.3x
  for six classes and 1.67-2.8x for eight (Drums 1.67, Typing 2.25, Speech 2.29, Piano 2.4, Dog 2.5, Alarm 2.73,
  Bell 2.78, Bird 2.8) — ratios of the ``pitch_range`` / ``rate_range`` bounds in the class table, ``classes.json``;
* ``rhythm``: ``regular`` or ``irregular`` onsets for event classes, ``continuous`` for the others (Siren, Engine,
  Rain, Wind, Speech);
* ``loudness``: ``quiet`` or ``loud`` — the clip's level (a loudness-normalising protocol removes it in mixtures,
  so captions never mention it).

Clip ``i`` of a split has class ``i % n_classes`` and pitch/tempo combination ``(i // n_classes) % 4``, so every
split holds every class with every combination: *attribute-contrast pairs* (same class, another pitch or tempo)
exist in each split, and only the words of a query can tell such a pair apart.

Columns added to the source-manifest schema:

* ``attributes``: JSON object (``pitch, tempo, rhythm, loudness`` plus the drawn ``pitch_hz`` and ``rate_hz``);
* ``paraphrases``: JSON list of 3 captions from templates and wordings never used in ``captions`` (for
  query-robustness studies);
* ``class_id``: the index of the clip's class in :func:`synth_classes`.

Captions always name the pitch and the tempo ("a high-pitched alarm beeps rapidly", "slow low bell strokes").

Modules: ``sounds`` (one generator per class), ``classes`` (the class table, ``classes.json``), ``captions``
(caption and paraphrase templates), ``clips`` (one clip from its split, index and seed) and ``cache`` (the corpus
on disk, keyed by the digest of all of them).
"""

from lassbench.corpora.synth.cache import (
    DEFAULT_CLIPS,
    SYNTH_VERSION,
    corpus_key,
    generator_digest,
    synth_corpus,
)
from lassbench.corpora.synth.classes import SynthClass, synth_class_table, synth_classes
from lassbench.corpora.synth.clips import SPLIT_SEED_CODES, SynthClip, generate_clip

__all__ = [
    "DEFAULT_CLIPS",
    "SPLIT_SEED_CODES",
    "SYNTH_VERSION",
    "SynthClass",
    "SynthClip",
    "corpus_key",
    "generate_clip",
    "generator_digest",
    "synth_class_table",
    "synth_classes",
    "synth_corpus",
]
