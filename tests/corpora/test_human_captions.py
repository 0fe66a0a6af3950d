"""People's captions as class queries: the matching rule, the shipped table, and how clips draw from it."""

from __future__ import annotations

from lassbench.corpora.human_captions import (
    CLASS_PATTERNS,
    caption_class,
    caption_split,
    compile_patterns,
    human_captions_for,
    load_human_captions,
)
from lassbench.corpora.packaged import load_table
from lassbench.corpora.packaged_clips import Arrangement, Measured, captions_for

PATTERNS = compile_patterns(CLASS_PATTERNS)


def test_a_caption_naming_one_class_sound_alone_is_that_class_query():
    assert caption_class("Birds chirp loudly", PATTERNS) == "bird"
    assert caption_class("A man speaks in a foreign language", PATTERNS) == "speech"  # the speaker is the sound


def test_a_caption_with_a_second_sound_or_two_classes_is_no_class_query():
    assert caption_class("Birds chirp and a man speaks", PATTERNS) is None  # a joining word
    assert caption_class("Birds chirp, water trickles", PATTERNS) is None  # two classes and a comma
    assert caption_class("A man hammers nails", PATTERNS) is None  # a person beside a non-speech sound
    assert caption_class("A baby coos", PATTERNS) is None  # no class of the corpus
    assert caption_class("A rooster crows loudly", PATTERNS) == "chicken"  # not the crow, the bird
    assert caption_class("Someone strums a guitar", PATTERNS) is None  # two classes: a strum and a guitar


def test_the_shipped_table_names_only_known_classes_once_each():
    table = load_human_captions()
    classes = set(load_table().classes)
    assert {label for label, _ in table} <= classes and len({label for label, _ in table}) >= 50
    texts = [c.lower() for captions in table.values() for c in captions]
    assert len(texts) == len(set(texts)) and len(texts) > 3000


def test_a_caption_split_is_a_fixed_function_of_its_id_in_roughly_the_stated_shares():
    splits = [caption_split(i) for i in range(10_000)]
    assert splits == [caption_split(i) for i in range(10_000)]
    assert 0.65 < splits.count("train") / len(splits) < 0.75 and 0.12 < splits.count("test") / len(splits) < 0.18


def test_a_test_clip_draws_only_test_captions_and_an_unseen_clip_draws_from_all():
    table = {("bird", "train"): ["birds sing"], ("bird", "test"): ["a bird chirps", "birds tweet"]}
    assert set(human_captions_for("bird", "test", table, "clip-a", count=5)) == {"A bird chirps", "Birds tweet"}
    assert len(human_captions_for("bird", "test-unseen", table, "clip-a", count=5)) == 3
    assert human_captions_for("bird", "val", table, "clip-a") == []


def test_measured_attributes_are_worded_in_more_than_one_way_across_clips():
    quiet = Measured(active_s=0.5, loudness_lufs=-45.0, centroid_hz=1000.0)
    wordings = {captions_for("bird", ["a bird calls"], quiet, Arrangement(1.0, 1, 0.0), "", f"clip-{k}")[0]
                for k in range(30)}
    assert len(wordings) >= 3  # "briefly" / "for a moment" / ... each drawn per clip
