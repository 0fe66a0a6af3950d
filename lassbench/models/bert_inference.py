"""A frozen BERT-family text encoder without transformers: ``tokenizers`` reads ``tokenizer.json`` and a plain-torch
BERT (embeddings + encoder layers, no pooler) loads the folder's weights strictly.

Importing transformers' BERT costs seconds of start-up (it pulls in torch._dynamo, generation utilities...), more
than a short evaluation run spends on its queries. This path reproduces what ``AutoTokenizer`` + ``AutoModel`` give
for a plain BERT folder: the same token ids (transformers' ``BertTokenizer`` rebuilds normaliser, post-processor
and special tokens from ``tokenizer_config.json``, so the folder is taken only where ``tokenizer.json`` says the
same), and the same hidden states, op for op (SDPA with transformers' boolean padding mask, none without padding).
A folder it cannot reproduce exactly (another architecture, float16 weights, custom added tokens...) gets
:func:`plain_bert_problem`'s reason and goes to transformers instead.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lassbench.errors import LassbenchError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
# transformers' BertConfig defaults, for keys a config.json leaves out
CONFIG_DEFAULTS = {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                   "intermediate_size": 3072, "hidden_act": "gelu", "max_position_embeddings": 512,
                   "type_vocab_size": 2, "layer_norm_eps": 1e-12}
ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}  # transformers' ACT2FN for these two calls exactly these
SPECIAL_TOKEN_DEFAULTS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                          "mask_token": "[MASK]"}
PLAIN_SPECIAL = {"special": True, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False}
VERY_LARGE_INTEGER = int(1e30)  # transformers' model_max_length when tokenizer_config.json names none
# Keys in a BERT weight file that the encoder does not use, each with why
DROPPED_KEYS = {
    "embeddings.position_ids": "index buffer saved by older transformers; positions are 0..L-1",
    "embeddings.token_type_ids": "index buffer (zeros) saved by some transformers versions",
    "pooler.dense.weight": "BERT's pooler (tanh on [CLS]); lassbench pools the last hidden state",
    "pooler.dense.bias": "BERT's pooler (tanh on [CLS]); lassbench pools the last hidden state",
}
LEGACY_NAMES = {".LayerNorm.gamma": ".LayerNorm.weight", ".LayerNorm.beta": ".LayerNorm.bias"}  # old TF exports


@dataclass(frozen=True)
class BertShape:
    """The sizes a BERT encoder is built from (config.json's keys, transformers' defaults where absent)."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    @classmethod
    def from_config(cls, config: dict) -> BertShape:
        merged = {**CONFIG_DEFAULTS, **{k: config[k] for k in CONFIG_DEFAULTS if config.get(k) is not None}}
        return cls(**merged)


@dataclass
class BertOutput:
    last_hidden_state: torch.Tensor


# --- which folders this path reproduces -----------------------------------------------------------------------------

def plain_bert_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot take this path (None: it can). Reads only the small JSON files."""
    config = _read_json(folder / "config.json")
    if config is None:
        return "no readable config.json"
    problem = _model_problem(config, folder)
    if problem is None:
        problem = _tokenizer_problem(folder)
    return problem


def _model_problem(config: dict, folder: Path) -> str | None:
    if config.get("model_type") != "bert":
        return f"model_type {config.get('model_type')!r}, not 'bert'"
    unsupported = {
        "is_decoder": config.get("is_decoder", False),
        "add_cross_attention": config.get("add_cross_attention", False),
        "chunk_size_feed_forward": config.get("chunk_size_feed_forward", 0),
        "pruned_heads": config.get("pruned_heads", {}),
    }
    set_ones = [key for key, value in unsupported.items() if value]
    if set_ones:
        return f"config sets {', '.join(set_ones)}"
    shape = BertShape.from_config(config)
    if shape.hidden_size % shape.num_attention_heads:
        return f"hidden_size {shape.hidden_size} not a multiple of {shape.num_attention_heads} heads"
    if config.get("position_embedding_type", "absolute") != "absolute":
        return f"position_embedding_type {config['position_embedding_type']!r}"
    if config.get("hidden_act", "gelu") not in ACTIVATIONS:
        return f"hidden_act {config['hidden_act']!r}"
    if config.get("attn_implementation") not in (None, "sdpa"):
        return f"attn_implementation {config['attn_implementation']!r}"
    dtype = config.get("dtype", config.get("torch_dtype"))
    if dtype not in (None, "float32"):  # transformers would build the model in that dtype
        return f"dtype {dtype}"
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        return f"none of {', '.join(WEIGHT_FILES)}"
    return None


def _tokenizer_problem(folder: Path) -> str | None:
    """transformers' BertTokenizer takes only the vocabulary from tokenizer.json and rebuilds the rest from
    tokenizer_config.json: the file is used as it is only where both say the same."""
    pipeline = _read_json(folder / "tokenizer.json")
    if pipeline is None:
        return "no readable tokenizer.json"
    settings = _tokenizer_settings(folder)
    if settings.get("tokenizer_class") not in (None, "BertTokenizer", "BertTokenizerFast"):
        return f"tokenizer_class {settings['tokenizer_class']!r}"
    if settings.get("padding_side", "right") != "right" or settings.get("truncation_side", "right") != "right":
        return "padding or truncation on the left"
    expected = {
        "model": {"type": "WordPiece", "unk_token": _special(settings, "unk_token"), "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100},
        "normalizer": {"type": "BertNormalizer", "clean_text": True,
                       "handle_chinese_chars": settings.get("tokenize_chinese_chars", True),
                       "strip_accents": settings.get("strip_accents"),
                       "lowercase": settings.get("do_lower_case", True)},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
    }
    for part, wanted in expected.items():
        found = pipeline.get(part) or {}
        if any(found.get(key) != value for key, value in wanted.items()):
            return f"tokenizer.json's {part} differs from what tokenizer_config.json asks for"
    return _added_tokens_problem(pipeline.get("added_tokens", []), settings)


def _added_tokens_problem(added: list[dict], settings: dict) -> str | None:
    """Only the five special tokens, each as transformers adds them (special, no stripping, not normalised), and
    tokenizer_config.json's list of added tokens, where it has one, the same."""
    specials = sorted({_special(settings, key) for key in SPECIAL_TOKEN_DEFAULTS})
    if sorted(t.get("content") for t in added) != specials or not all(map(_is_plain_special, added)):
        return "added tokens other than the five plain special ones"
    declared = settings.get("added_tokens_decoder") or {}
    if declared and ({(t.get("content"), int(i)) for i, t in declared.items()} != {(t["content"], t["id"])
                                                                                   for t in added}
                     or not all(map(_is_plain_special, declared.values()))):
        return "tokenizer_config.json's added tokens differ from tokenizer.json's"
    return None


def _is_plain_special(token: dict) -> bool:
    return {key: token.get(key) for key in PLAIN_SPECIAL} == PLAIN_SPECIAL


def _tokenizer_settings(folder: Path) -> dict:
    """tokenizer_config.json over special_tokens_map.json, as transformers merges them."""
    settings = dict(_read_json(folder / "special_tokens_map.json") or {})
    settings.update(_read_json(folder / "tokenizer_config.json") or {})
    return settings


def _special(settings: dict, key: str) -> str:
    value = settings.get(key) or SPECIAL_TOKEN_DEFAULTS[key]
    return value["content"] if isinstance(value, dict) else str(value)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- tokenizer -------------------------------------------------------------------------------------------------------

class BertTokenizerJson:
    """tokenizer.json through the ``tokenizers`` package, called the way :class:`TextEncoder` calls transformers'
    tokenizers: a batch, padded to its longest query, optionally truncated, as int64 tensors."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer
        from tokenizers.processors import TemplateProcessing

        settings = _tokenizer_settings(folder)
        self.folder = folder
        self.model_max_length = int(settings.get("model_max_length") or VERY_LARGE_INTEGER)
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        cls, sep, pad = (_special(settings, key) for key in ("cls_token", "sep_token", "pad_token"))
        # the template transformers' BertTokenizer sets, whatever tokenizer.json holds
        self._tokenizer.post_processor = TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, self._token_id(cls)), (sep, self._token_id(sep))])
        self._pad = (pad, self._token_id(pad))

    def _token_id(self, token: str) -> int:
        index = self._tokenizer.token_to_id(token)
        if index is None:
            raise LassbenchError(f"text encoder folder {self.folder}: tokenizer.json has no {token} token")
        return index

    def __call__(self, texts: list[str], *, padding: bool = True, truncation: bool = False,
                 max_length: int | None = None, return_tensors: str = "pt") -> dict[str, torch.Tensor]:
        if return_tensors != "pt":
            raise ValueError("BertTokenizerJson returns torch tensors only")
        if truncation:
            self._tokenizer.enable_truncation(max_length or self.model_max_length, stride=0,
                                              strategy="longest_first", direction="right")
        else:
            self._tokenizer.no_truncation()
        if padding:
            self._tokenizer.enable_padding(direction="right", pad_id=self._pad[1], pad_type_id=0,
                                           pad_token=self._pad[0])
        else:
            self._tokenizer.no_padding()
        encodings = self._tokenizer.encode_batch(texts)
        return {
            "input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.long),
            "token_type_ids": torch.tensor([e.type_ids for e in encodings], dtype=torch.long),
            "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.long),
        }

    def save_pretrained(self, folder: str | Path) -> None:
        """The tokenizer files it was read from, so the folder loads again."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        for name in TOKENIZER_FILES:
            if (self.folder / name).is_file():
                shutil.copyfile(self.folder / name, Path(folder) / name)


# --- encoder ---------------------------------------------------------------------------------------------------------
# Module and attribute names follow transformers' BertModel so that weight files load key for key. The parameters
# start uninitialised and the weight file's tensors become them (load_state_dict(assign=True), every key checked):
# initialising ~23 M values at random and then copying over them cost a few tenths of a second of start-up.

class _Linear(nn.Module):
    def __init__(self, width_in: int, width_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(width_out, width_in))
        self.bias = nn.Parameter(torch.empty(width_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class _Embedding(nn.Module):
    """No padding_idx: it only keeps the pad row out of gradients, and inference takes none."""

    def __init__(self, rows: int, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(rows, width))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight)


class _LayerNorm(nn.Module):
    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(width))
        self.bias = nn.Parameter(torch.empty(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class _Embeddings(nn.Module):
    def __init__(self, shape: BertShape) -> None:
        super().__init__()
        self.word_embeddings = _Embedding(shape.vocab_size, shape.hidden_size)
        self.position_embeddings = _Embedding(shape.max_position_embeddings, shape.hidden_size)
        self.token_type_embeddings = _Embedding(shape.type_vocab_size, shape.hidden_size)
        self.LayerNorm = _LayerNorm(shape.hidden_size, shape.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(embeddings + self.position_embeddings(positions))


class _SelfAttention(nn.Module):
    def __init__(self, shape: BertShape) -> None:
        super().__init__()
        self.heads = shape.num_attention_heads
        self.query = _Linear(shape.hidden_size, shape.hidden_size)
        self.key = _Linear(shape.hidden_size, shape.hidden_size)
        self.value = _Linear(shape.hidden_size, shape.hidden_size)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, width = hidden.shape
        head_size = width // self.heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, length, -1, head_size).transpose(1, 2)

        attended = F.scaled_dot_product_attention(split(self.query(hidden)), split(self.key(hidden)),
                                                  split(self.value(hidden)), attn_mask=mask, dropout_p=0.0,
                                                  scale=head_size**-0.5, is_causal=False)
        return attended.transpose(1, 2).contiguous().reshape(batch, length, -1).contiguous()


class _DenseAddNorm(nn.Module):
    """Linear, then LayerNorm of it plus the residual."""

    def __init__(self, width_in: int, shape: BertShape) -> None:
        super().__init__()
        self.dense = _Linear(width_in, shape.hidden_size)
        self.LayerNorm = _LayerNorm(shape.hidden_size, shape.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(hidden) + residual)


class _Attention(nn.Module):
    def __init__(self, shape: BertShape) -> None:
        super().__init__()
        self.self = _SelfAttention(shape)
        self.output = _DenseAddNorm(shape.hidden_size, shape)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(hidden, mask), hidden)


class _Intermediate(nn.Module):
    def __init__(self, shape: BertShape) -> None:
        super().__init__()
        self.dense = _Linear(shape.hidden_size, shape.intermediate_size)
        self.activation = ACTIVATIONS[shape.hidden_act]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden))


class _Layer(nn.Module):
    def __init__(self, shape: BertShape) -> None:
        super().__init__()
        self.attention = _Attention(shape)
        self.intermediate = _Intermediate(shape)
        self.output = _DenseAddNorm(shape.intermediate_size, shape)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        attended = self.attention(hidden, mask)
        return self.output(self.intermediate(attended), attended)


class _Layers(nn.Module):
    def __init__(self, shape: BertShape) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(shape) for _ in range(shape.num_hidden_layers))


class BertEncoder(nn.Module):
    """BERT up to its last hidden state (inference only: no dropout, no pooler)."""

    def __init__(self, shape: BertShape, config: dict) -> None:
        super().__init__()
        self.config = shape
        self._config_json = config  # written back by save_pretrained
        self.embeddings = _Embeddings(shape)
        self.encoder = _Layers(shape)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> BertOutput:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        hidden = self.embeddings(input_ids, token_type_ids)
        mask = _attention_mask(attention_mask, hidden.shape[1])
        for layer in self.encoder.layer:
            hidden = layer(hidden, mask)
        return BertOutput(hidden)

    def save_pretrained(self, folder: str | Path) -> None:
        """config.json + model.safetensors, a folder :func:`load_plain_bert` reads back."""
        from safetensors.torch import save_file

        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "config.json").write_text(json.dumps(self._config_json, indent=2), encoding="utf-8")
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(Path(folder) / "model.safetensors"))


def _attention_mask(attention_mask: torch.Tensor | None, length: int) -> torch.Tensor | None:
    """transformers' SDPA mask: none when nothing is padded (SDPA then takes its unmasked kernel), else a boolean
    (batch, 1, query, key) mask of the keys to attend to."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return attention_mask.bool()[:, None, None, :].expand(-1, 1, length, length)


# --- loading ---------------------------------------------------------------------------------------------------------

def load_plain_bert(folder: Path) -> tuple[BertTokenizerJson, BertEncoder] | None:
    """The tokenizer and encoder of a BERT folder that :func:`plain_bert_problem` accepts; None where the weights
    turn out not to be float32 (transformers would run the model in their dtype). Raises LassbenchError where
    the weights do not fit the config."""
    config = _read_json(folder / "config.json") or {}
    state = _read_weights(folder)
    if any(t.is_floating_point() and t.dtype != torch.float32 for t in state.values()):
        return None
    model = BertEncoder(BertShape.from_config(config), config)
    _load_strictly(model, state, folder)
    return BertTokenizerJson(folder), model.eval()


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(folder / "model.safetensors"))
    return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)


def _load_strictly(model: BertEncoder, state: dict[str, torch.Tensor], folder: Path) -> None:
    """Every key is loaded or dropped by a named rule; missing, unexpected or mis-shaped keys, all in one error."""
    state = _encoder_keys(state)
    kept = {k: v for k, v in state.items() if k not in DROPPED_KEYS}
    wanted = model.state_dict()
    missing = sorted(wanted.keys() - kept.keys())
    unexpected = sorted(kept.keys() - wanted.keys())
    misshaped = sorted(f"{k} {tuple(kept[k].shape)} vs {tuple(wanted[k].shape)}"
                       for k in wanted.keys() & kept.keys() if kept[k].shape != wanted[k].shape)
    if missing or unexpected or misshaped:
        parts = [f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
                 if keys]
        raise LassbenchError(f"text encoder folder {folder}: weights do not fit its config.json ({'; '.join(parts)})")
    model.load_state_dict(kept, strict=True, assign=True)  # the file's tensors become the parameters


def _encoder_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A BertFor* checkpoint keeps the encoder under ``bert.`` and its task or pre-training heads beside it: the
    heads are dropped, as AutoModel drops them. Old TF conversions name LayerNorm's weight and bias gamma and beta:
    renamed (:data:`LEGACY_NAMES`), as transformers renames them."""
    if any(k.startswith("bert.") for k in state):
        state = {k.removeprefix("bert."): v for k, v in state.items() if k.startswith("bert.")}
    return {_modern_name(key): value for key, value in state.items()}


def _modern_name(key: str) -> str:
    for old, new in LEGACY_NAMES.items():
        if key.endswith(old):
            return key.removesuffix(old) + new
    return key
