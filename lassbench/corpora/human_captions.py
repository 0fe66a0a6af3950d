"""Captions written by people for a class's sound: AudioCaps captions that name that sound alone.

The shipped table (``lassbench/data/audiocaps_captions.csv``: ``audiocap_id, class, caption``) is made once from
AudioCaps's released caption text by :func:`match_captions` (``python recipes/real/match_captions.py``); the
packaged corpus draws a clip's human captions from it (:func:`human_captions_for`). The audio is never needed.

A caption is a query for class ``c`` when (docs/real-corpus.md, "Captions written by people"):

1. it matches ``c``'s pattern (``CLASS_PATTERNS``) and no other class's;
2. it is one clause about one sound: no joining word (``and``, ``while``, ``as``, ``with``, ``then``, ``followed``,
   ...) and no comma;
3. it names no other common sound source (``OTHER_SOURCES``: people, music, vehicles, weather, ...), except the
   words of ``c``'s own pattern (speech: "a man speaks").

A caption's split is a fixed function of its AudioCaps id (70 % train, 15 % val, 15 % test), so a test clip's human
captions are never training text; an unseen class's captions all serve its test-unseen clips.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

from lassbench.errors import LassbenchError

CLASS_PATTERNS = {
    "bass_drum": r"\b(bass|kick) drums?\b",
    "bass_guitar": r"\bbass guitars?\b",
    "bassoon": r"\b(bassoons?|oboes?|clarinets?|woodwinds?)\b",
    "bee": r"\b(bees?|wasps?|hornets?|bumblebees?)\b",
    "bell": r"\b(?<!cow )bells?\b",
    "bird": r"\b(birds?|chirp\w*|tweet\w*|songbirds?|warbl\w*)\b",
    "breathing": r"\b(breath\w*|inhal\w*|exhal\w*|pant(s|ing))\b",
    "burping": r"\b(burp\w*|belch\w*)\b",
    "camera": r"\b(cameras?|shutters?)\b",
    "car_horn": r"\b((car|vehicle|truck|bus) )?(horns?|honk\w*)\b",
    "cash_register": r"\bcash registers?\b",
    "cat": r"\b(cats?|meow\w*|kittens?|purr\w*)\b",
    "cattle": r"\b(cows?|cattle|moo\w*|bulls?|oxen)\b",
    "cello": r"\bcellos?\b",
    "chicken": r"\b(chickens?|hens?|roosters?|cluck\w*|crows? (loudly|repeatedly)|cock-a-doodle\w*)\b",
    "children_playing": r"\b(children|kids?) (play\w*|shout\w*|laugh\w*|yell\w*|scream\w*)\b",
    "choir": r"\b(choirs?( sing\w*)?|chorus|choral)\b",
    "clapping": r"\b(claps?|clapping|hand ?claps?)\b",
    "clock": r"\b(clocks?|tick\w*|tock\w*)\b",
    "coins": r"\bcoins?\b",
    "cowbell": r"\bcow ?bells?\b",
    "cricket": r"\bcrickets?\b",
    "crow": r"\b(caw\w*|ravens?|(a|the|two|several) crows?)\b",
    "crowd": r"\b(crowds?|cheer\w*|applau\w*|audience)\b",
    "cymbal": r"\bcymbals?\b",
    "dog": r"\b(dogs?|bark\w*|pupp(y|ies)|woof\w*|yelp\w*)\b",
    "door": r"\bdoors?\b",
    "drum_kit": r"\b(drum ?kits?|drum ?sets?|breakbeats?)\b",
    "drum_roll": r"\bdrum ?rolls?\b",
    "duck": r"\b(ducks?|quack\w*)\b",
    "electric_guitar": r"\belectric guitars?\b",
    "electric_piano": r"\belectric pianos?\b",
    "engine": r"\b(?<!fire )engines?\b",
    "explosion": r"\b(explo\w*|blasts?|detonat\w*)\b",
    "finger_snapping": r"\b(fingers? snap\w*|snap\w* (of )?(his |her |their )?fingers)\b",
    "fire": r"\b(fire(?! ?(trucks?|engines?|works))|flames?|crackl\w*|burn\w*)\b",
    "fire_engine": r"\bfire ?(trucks?|engines?)( sirens?)?\b",
    "fireworks": r"\b(fireworks?|firecrackers?)\b",
    "flute": r"\bflutes?\b",
    "frog": r"\b(frogs?|croak\w*|toads?)\b",
    "glass": r"\b(glass\w*|clink\w*)\b",
    "goat": r"\bgoats?\b",
    "goose": r"\b(geese|goose)\b",
    "guitar": r"\b(?<!electric )(?<!bass )guitars?\b",
    "guitar_strum": r"\bstrum\w*\b",
    "gurgling": r"\b(gurgl\w*|bubbl\w*)\b",
    "hammering": r"\bhammer\w*\b",
    "hand_drum": r"\b(bongos?|congas?|djembes?|hand drums?)\b",
    "harp": r"\bharps?\b",
    "harpsichord": r"\bharpsichords?\b",
    "hi_hat": r"\bhi-?hats?\b",
    "horse": r"\b(horses?|neigh\w*|whinn\w*)\b",
    "howl": r"\b(howl\w*|wol(f|ves)|coyotes?)\b",
    "hubbub": r"\b((people|voices?) )?(hubbub|babbl\w*|chatter\w*|murmur\w*)\b",
    "insect": r"\b(insects?|flies|housefl\w*|beetles?|cicadas?)\b",
    "keyboard": r"\b(typing|types|keyboards?|keystrokes?)\b",
    "letters": r"\b(spell(s|ing|ed)|alphabet|syllables?|counts?|counting)\b",
    "livestock": r"\b(livestock|farm animals?|donkeys?|bray\w*|camels?)\b",
    "machinery": r"\b(machines?|machinery|mechanical|mechanism|gears?|whirr\w*)\b",
    "mains_hum": r"\b(electric(al)? (hum|buzz)\w*|power lines?|transformers?|mains hum)\b",
    "maraca": r"\bmaracas?\b",
    "mosquito": r"\bmosquito\w*\b",
    "mouse": r"\b(mice|rodents?|rats)\b",
    "organ": r"\b(pipe )?organs?\b",
    "owl": r"\b(owls?|hoot\w*)\b",
    "piano": r"\b(?<!electric )pianos?\b",
    "pig": r"\b(pigs?|oink\w*|hogs?|piglets?)\b",
    "printer": r"\b(printers?|printing)\b",
    "rimshot": r"\brim ?shots?\b",
    "roaring_cats": r"\b(lions?|tigers?|roar\w*)\b",
    "sawing": r"\b(saw(s|ing|ed)?|sawn)\b",
    "scissors": r"\bscissors\b",
    "scratching": r"\b(record scratch\w*|scratch\w* (a )?records?|turntables?|vinyl|dj)\b",
    "shaker": r"\bshakers?\b",
    "sheep": r"\b(sheep|lambs?|baa\w*)\b",
    "sizzle": r"\b(sizzl\w*|fry(ing)?|fries)\b",
    "sliding": r"\b(scrap\w*|slid\w*|skid\w*|skis?|skiing|sled\w*)\b",
    "snare_drum": r"\bsnare( drums?)?\b",
    "snoring": r"\bsnor\w*\b",
    "speech": r"\b(speaks?|speaking|talks?|talking|says|saying|narrat\w*|speech|monologue|lectur\w*)\b",
    "splash": r"\bsplash\w*\b",
    "squeak": r"\bsqueak\w*\b",
    "tabla": r"\btablas?\b",
    "tambourine": r"\btambourines?\b",
    "thunder": r"\bthunder\w*\b",
    "toilet_flush": r"\b(toilets?|flush\w*)\b",
    "tom_drum": r"\b(toms?|drums?(?! ?(kits?|sets?|rolls?))|drumming|drumbeats?)\b",
    "traffic": r"\btraffic\b",
    "train": r"\b(trains?|railroad|railway|locomotives?)\b",
    "trumpet": r"\btrumpets?\b",
    "turkey": r"\b(turkeys?|gobbl\w*)\b",
    "typewriter": r"\btypewriter\w*\b",
    "vacuum_cleaner": r"\b(vacuum\w*|hoover\w*)( cleaners?)?\b",
    "violin": r"\b(violins?|fiddl\w*)\b",
    "water": r"\b(water|stream\w*|brook|trickl\w*|waves?)\b",
    "whale": r"\bwhales?\b",
    "wild_animal": r"\b(elephants?|monkeys?|bears?|gorillas?|chimpanzees?|deer|elk|moose)\b",
    "wood_block": r"\b(wood ?blocks?|claves)\b",
    "wood_chopping": r"\b(chop\w* (wood|logs?|firewood)|axes?)\b",
    "xylophone": r"\b(xylophones?|marimbas?)\b",
}
JOINING = re.compile(r",|\b(and|while|as|with|then|followed|before|after|over|amid|during|plus|also|meanwhile|"
                     r"background|together|alongside|along|until|mixed|accompan\w*)\b", re.I)
OTHER_SOURCES = re.compile(
    r"\b(people|man|men|woman|women|person|boy|girl|child\w*|kids?|baby|voices?|speak\w*|talk\w*|laugh\w*|"
    r"sing\w*|music\w*|song|guitar|piano|engines?|vehicles?|motorcycles?|trucks?|bus|cars?|wind|rain\w*|"
    r"thunder|sirens?|horns?|dogs?|cats?|bark\w*|meow\w*|gun\w*|shots?|beeps?|alarms?|phone|radio|tv|"
    r"television|aircraft|airplane|plane|helicopter|static|noise|hum\w*|buzz\w*|whistl\w*|burp\w*|air|breeze|"
    r"boats?|motor\w*|interrupt\w*|spray\w*|animals?|rapp\w*|knock\w*|cry\w*|cough\w*|sneez\w*|snor\w*|"
    r"breath\w*|hiss\w*|steam|vacuum|drill\w*|saws?|tools?|power|toilet|flush\w*|crowd|audience|"
    r"fire ?trucks?|following|doors?|electronic\w*|synthesi\w*|jets?|artillery|windy)\b", re.I)
# who makes a class's sound may be named (speech: "a man speaks"); for other classes they are another source
SPEAKERS = {"speech": re.compile(r"\b(an? )?(adult|young|old|elderly|mature|male|female|man|men|woman|women|"
                                 r"person|boy|girl|people)\b", re.I)}
SPLIT_OF_CAPTION = (("train", 70), ("val", 15), ("test", 15))  # percent, by the caption's id
TABLE = "data/audiocaps_captions.csv"
COLUMNS = ("audiocap_id", "class", "caption")


def compile_patterns(patterns: dict[str, str]) -> dict[str, re.Pattern]:
    return {name: re.compile(pattern, re.I) for name, pattern in patterns.items()}


def caption_class(caption: str, patterns: dict[str, re.Pattern]) -> str | None:
    """The one class whose sound ``caption`` names alone, or None (rule in the module docstring)."""
    matched = [name for name, pattern in patterns.items() if pattern.search(caption)]
    if len(matched) != 1 or JOINING.search(caption):
        return None
    rest = patterns[matched[0]].sub(" ", caption)  # the class's own words may be source words
    if matched[0] in SPEAKERS:
        rest = SPEAKERS[matched[0]].sub(" ", rest)
    return None if OTHER_SOURCES.search(rest) else matched[0]


def match_captions(rows: Iterable[dict], classes: Iterable[str] | None = None) -> list[dict]:
    """``audiocap_id, class, caption`` of each AudioCaps row whose caption names one class's sound alone;
    duplicate texts (ignoring case and spacing) are kept once, in id order."""
    patterns = compile_patterns({k: v for k, v in CLASS_PATTERNS.items() if classes is None or k in set(classes)})
    out, seen = [], set()
    for row in sorted(rows, key=lambda r: int(r["audiocap_id"])):
        caption = re.sub(r"\s+", " ", str(row["caption"])).strip().rstrip(".")
        label = caption_class(caption, patterns)
        if label and caption.lower() not in seen:
            seen.add(caption.lower())
            out.append({"audiocap_id": int(row["audiocap_id"]), "class": label, "caption": caption})
    return out


def caption_split(audiocap_id: int) -> str:
    bucket = int.from_bytes(hashlib.sha256(str(audiocap_id).encode()).digest()[:4], "big") % 100
    for name, share in SPLIT_OF_CAPTION:
        if bucket < share:
            return name
        bucket -= share
    return SPLIT_OF_CAPTION[-1][0]


@lru_cache(maxsize=1)
def load_human_captions() -> dict[tuple[str, str], list[str]]:
    """``(class, split) -> captions`` from the shipped table (split by :func:`caption_split`)."""
    text = resources.files("lassbench").joinpath(TABLE).read_text(encoding="utf-8")
    table: dict[tuple[str, str], list[str]] = {}
    reader = csv.DictReader(text.splitlines())
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise LassbenchError(f"lassbench/{TABLE}: expected the columns {', '.join(COLUMNS)}")
    for row in reader:
        table.setdefault((row["class"], caption_split(int(row["audiocap_id"]))), []).append(row["caption"])
    return table


def human_captions_for(label: str, split: str, table: dict[tuple[str, str], list[str]], seed_text: str,
                       count: int = 2) -> list[str]:
    """Up to ``count`` captions of ``label`` for a clip of ``split`` (a test-unseen clip draws from all of its
    class's captions: none of them is training text), chosen by a hash of ``seed_text``."""
    pool = ([c for s in ("train", "val", "test") for c in table.get((label, s), [])] if split == "test-unseen"
            else table.get((label, split), []))
    if not pool:
        return []
    order = sorted(range(len(pool)), key=lambda i: hashlib.sha256(f"{seed_text}#{i}".encode()).digest())
    return [pool[i][0].upper() + pool[i][1:] for i in order[:count]]
