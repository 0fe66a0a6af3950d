"""Reading published checkpoints safely and loading them strictly: the file reader (weights only; a Lightning
checkpoint's other objects become inert placeholders, nothing from the file is executed), the strict matcher (every
tensor loaded or dropped by a named :class:`DropRule`), and the tokenizer folder. Each system's own rules live in
its loader (:mod:`lassbench.models.published.loading` and the per-system ``*_loading`` modules)."""

from __future__ import annotations

import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lassbench.errors import LassbenchError
from lassbench.models.published.systems import PublishedSpec


@dataclass(frozen=True)
class DropRule:
    pattern: str  # regular expression matched against the whole key
    reason: str


def read_checkpoint_file(path: Path) -> dict:
    if not path.is_file():
        raise LassbenchError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if zipfile.is_zipfile(path) and "weights only" in str(exc).lower():
            payload = read_tensors_only(path)
        else:
            raise LassbenchError(
                f"{path}: truncated or not a PyTorch checkpoint ({path.stat().st_size:,} bytes; "
                f"torch.load: {first_line(exc)}): download it again and compare its size"
            ) from exc
    if not isinstance(payload, dict):
        raise LassbenchError(f"{path}: not a checkpoint dict (got {type(payload).__name__})")
    return payload


def match_and_count(net: nn.Module, state: dict[str, torch.Tensor], rules: list[DropRule], path: Path,
                    computed: dict[str, int]) -> dict[str, int]:
    """:func:`match_state`, then the keys a loader merged or computed itself counted under their reasons
    (``computed``: reason -> number; zero counts are left out)."""
    dropped = match_state(net, state, rules, path)
    dropped.update({reason: count for reason, count in computed.items() if count})
    return dropped


def match_state(net: nn.Module, state: dict[str, torch.Tensor], rules: list[DropRule], path: Path) -> dict[str, int]:
    """Load ``state`` into ``net`` strictly; returns {reason: number of keys dropped for it}."""
    dropped: dict[str, int] = {}
    kept = {}
    for key, value in state.items():
        rule = next((r for r in rules if re.fullmatch(r.pattern, key)), None)
        if rule is None:
            kept[key] = value
        else:
            dropped[rule.reason] = dropped.get(rule.reason, 0) + 1
    expected = net.state_dict()
    missing = [k for k in expected if k not in kept]
    unexpected = [k for k in kept if k not in expected]
    if missing:
        raise LassbenchError(f"{path}: {len(missing)} weight(s) missing, e.g. {_names(missing)}")
    if unexpected:
        raise LassbenchError(f"{path}: {len(unexpected)} unexpected weight(s), e.g. {_names(unexpected)}")
    for key, value in kept.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise LassbenchError(f"{path}: weight {key} has shape {tuple(value.shape)}, the architecture needs "
                                 f"{tuple(expected[key].shape)}")
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in kept.items()}, strict=True)
    return dropped


def read_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A flat state dict from ``path``: a ``.safetensors`` file, or a torch file read without executing pickles
    (a lassbench checkpoint refused); a truncated file is one error line."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types for a truncated header or body
            raise LassbenchError(f"{path}: truncated or not a safetensors file ({path.stat().st_size:,} bytes; "
                                 f"{first_line(exc)}): download it again and compare its size") from exc
    payload = read_checkpoint_file(path)
    refuse_lassbench(payload, path)
    return tensors_of(payload)


@contextmanager
def settings_of(file: Path) -> Iterator[None]:
    """A release's config.json whose value has the wrong type or range (``"dim": "32"``, a layer index in words)
    becomes one error line naming the file, not a traceback from deep inside a module's constructor."""
    try:
        yield
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise LassbenchError(f"{file}: a setting has a value of the wrong type or range ({first_line(exc)})") from exc


def read_t5_config(folder: str | None, hint: str):
    """The T5 configuration in a --text-encoder folder (FlowSep's FLAN-T5, SAM Audio's T5), one error line with
    ``hint`` when it has none or another model's."""
    from transformers import T5Config

    where = Path(folder) if folder else None
    if where is None or not (where / "config.json").is_file():
        raise LassbenchError(f"--text-encoder {folder}: no T5 config.json; {hint}")
    try:
        config = T5Config.from_pretrained(where, local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError... for a config it cannot read
        raise LassbenchError(f"--text-encoder {folder}: config.json is not a T5 configuration; {hint}") from exc
    if config.model_type != "t5":
        raise LassbenchError(f"--text-encoder {folder}: config.json describes a {config.model_type} model; {hint}")
    return config


def refuse_lassbench(payload: dict, path: Path) -> None:
    if isinstance(payload.get("model"), str) and "config" in payload:
        raise LassbenchError(f"{path}: a lassbench checkpoint of model '{payload['model']}': run it as that model")


def tensors_of(state: dict) -> dict[str, torch.Tensor]:
    return {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_tokenizer(spec: PublishedSpec, folder: str | None):
    """The tokenizer in a local folder (never downloaded), loaded before any checkpoint is read so that a wrong
    folder fails in a second: whatever ``AutoTokenizer`` loads from it (e.g. a ``save_pretrained`` folder holding
    only ``tokenizer.json`` + ``tokenizer_config.json``), else the release's own tokenizer class from its plain
    vocabulary files (BERT: ``vocab.txt``; RoBERTa: ``vocab.json`` + ``merges.txt``, as the hub ships them)."""
    from transformers import AutoTokenizer, BertTokenizer, RobertaTokenizer

    hint = f"{spec.name} needs the {spec.text_encoder}: pass --text-encoder DIR"
    if not folder:
        raise LassbenchError(f"no tokenizer given: {hint}")
    if not Path(folder).is_dir():
        raise LassbenchError(f"--text-encoder {folder}: not a folder; {hint}")
    release_class, files = ((BertTokenizer, ("vocab.txt",)) if spec.family == "lassnet-release"
                            else (RobertaTokenizer, ("vocab.json", "merges.txt")))
    not_one = f"--text-encoder {folder}: not a tokenizer folder (no tokenizer.json, no {' + '.join(files)})"
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, TypeError... for an unusable folder
        # transformers 5 builds the release's class with an empty vocabulary from any folder: only where its files are
        if not all((Path(folder) / name).is_file() for name in files):
            raise LassbenchError(f"{not_one}; {hint}") from exc
        try:
            tokenizer = release_class.from_pretrained(folder, local_files_only=True)
        except Exception as again:
            raise LassbenchError(f"--text-encoder {folder}: cannot load a tokenizer ({first_line(again)}); "
                                 f"{hint}") from again
    if len(tokenizer.get_vocab()) <= len(tokenizer.all_special_tokens):  # e.g. a model's config.json, no vocabulary
        raise LassbenchError(f"{not_one}; {hint}")
    return tokenizer


def check_vocabulary(spec: PublishedSpec, folder: str | None, tokenizer, vocab_size: int) -> None:
    if len(tokenizer) > vocab_size:
        raise LassbenchError(f"--text-encoder {folder}: {len(tokenizer):,} tokens but the checkpoint's embedding has "
                             f"{vocab_size:,} rows: not this model's tokenizer; {spec.name} needs the "
                             f"{spec.text_encoder}")


class _Opaque:
    """Stands for any pickled object that is not a tensor or a plain container; accepts and ignores everything."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, *state) -> None:  # *state: a BUILD on the class itself calls it with the state alone
        pass


class _Marker:
    """What the pickle gets for a storage class or a storage: an object of this load alone (see find_class)."""


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}


def _fresh(function):
    """A new function object calling ``function``: a pickle can set attributes on whatever it is handed (BUILD,
    e.g. ``__defaults__``), so it is never handed a shared object, only one that dies with the load."""

    def call(*args):
        return function(*args)

    return call


class _TensorsOnly(pickle.Unpickler):
    """Rebuilds tensors, ``OrderedDict`` and ``torch.Size`` through wrappers made for this load; everything else
    becomes a fresh :class:`_Opaque` class. Nothing the file names reaches torch's own functions or classes, so a
    load cannot change what a later load does."""

    def __init__(self, file, archive: zipfile.ZipFile, root: str) -> None:
        super().__init__(file)
        self.archive, self.root = archive, root
        self._issued: dict[int, tuple[object, object]] = {}  # id(marker) -> (marker, dtype or (storage, dtype))

    def find_class(self, module: str, name: str):
        if module == "torch" and name in _STORAGE_DTYPES:
            return self._issue(_STORAGE_DTYPES[name])  # the storage's dtype stands for its class
        makers = {
            ("collections", "OrderedDict"): lambda *args: OrderedDict(*args),
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
            ("torch", "Size"): lambda *args: torch.Size(_sizes(*args)),
        }
        if (module, name) in makers:
            return _fresh(makers[(module, name)])
        return type(f"{module}.{name}", (_Opaque,), {})

    def persistent_load(self, pid):
        _, kind, key, _, _ = pid
        dtype = self._lookup(kind)
        if not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(f"unsupported storage type {kind!r}")
        data = self.archive.read(f"{self.root}/data/{key}")
        untyped = torch.UntypedStorage.from_buffer(data, dtype=torch.uint8) if data else torch.UntypedStorage(0)
        return self._issue((untyped, dtype))

    def _issue(self, value) -> _Marker:
        marker = _Marker()
        self._issued[id(marker)] = (marker, value)
        return marker

    def _lookup(self, marker):
        issued = self._issued.get(id(marker))
        return issued[1] if issued is not None and issued[0] is marker else None

    def _rebuild_tensor(self, storage, offset, size, stride, *_ignored) -> torch.Tensor:
        # requires_grad, backward hooks and metadata are dropped: weights are read, nothing is attached to them
        found = self._lookup(storage)
        if not isinstance(found, tuple):
            raise pickle.UnpicklingError("a tensor without a storage of this file")
        untyped, dtype = found
        size, stride = _sizes(size), _sizes(stride)
        if type(offset) is not int or offset < 0 or len(size) != len(stride):
            raise pickle.UnpicklingError(f"tensor offset {offset!r}, size {size}, stride {stride}")
        end = offset + sum((n - 1) * step for n, step in zip(size, stride, strict=True)) + 1 if all(size) else 0
        if end * dtype.itemsize > untyped.nbytes():  # set_ would silently grow the storage
            raise pickle.UnpicklingError(f"a tensor of size {size} reaches past its storage ({untyped.nbytes()} bytes)")
        return torch.empty((0,), dtype=dtype).set_(untyped, offset, size, stride)

    @staticmethod
    def _rebuild_parameter(data, *_ignored) -> torch.Tensor:
        if not isinstance(data, torch.Tensor):
            raise pickle.UnpicklingError(f"a parameter of {type(data).__name__}, not a tensor")
        return data


def _sizes(values=()) -> tuple[int, ...]:
    values = tuple(values)
    if not all(type(v) is int and v >= 0 for v in values):
        raise pickle.UnpicklingError(f"tensor size or stride {values!r}")
    return values


def read_tensors_only(path: Path) -> dict:
    """A torch zip checkpoint's tensors and plain containers, without executing anything it pickled."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            root = pickles[0].rsplit("/", 1)[0]
            with archive.open(pickles[0]) as file:
                return _TensorsOnly(file, archive, root).load()
    except (zipfile.BadZipFile, IndexError, KeyError, pickle.UnpicklingError, EOFError, TypeError, ValueError,
            AttributeError, RuntimeError) as exc:  # RuntimeError: torch refuses a view past its storage's end
        raise LassbenchError(f"{path}: truncated or corrupt checkpoint ({first_line(exc)})") from exc


def _names(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].split(". ")[0][:160] if text else type(exc).__name__
