"""Loudness and SNR arithmetic shared by every protocol, the build and on-the-fly training mixes.

A benchmark item is first a *specification* (:class:`ItemSpec`: which clips, which query, which SNRs), drawn by a
protocol; :func:`render` then turns a spec plus source arrays already in memory into a :class:`RenderedItem`
(mixture, target, interferers). The build writes what ``render`` returns, and a training loop can call the very
same function on arrays it keeps in memory.

Mixing rules (``ItemSpec.rule``), each the rule of one protocol (see docs/protocols.md):

``loudness`` (lassbench)
    target gain ``10^((target_lufs - L_t)/20)``, interferer ``k`` gain ``10^((target_lufs - snr_k - L_k)/20)``
    where ``L`` is the source's integrated loudness (BS.1770-4, measured once per source); if the mixture's peak
    exceeds 1, everything is multiplied by one common gain ``0.99/peak`` (recorded).
``energy_snr`` (dcase2024)
    noise scaled so that ``mean(t^2) / mean(n^2) = 10^(snr/10)``; if the mixture's peak exceeds 1, target and
    mixture (and here the noise, so the three stay consistent) are multiplied by ``0.9/peak``.
``peak_snr`` (lassnet)
    both clips peak-normalised to 1, the noise divided by ``10^(snr/20)``, then all divided by the largest peak of
    mixture, noise and target (voicefixer's ``unify_energy``; almost always the mixture's).
``energy_gain`` (audiosep re-mixed from raw clips)
    each noise energy-matched to the target (ratio clamped to [0.02, 50]) and given ``snr_db[k]`` dB, their sum
    energy-matched again and given ``mix_db`` dB; de-clipped like ``energy_snr``.
``rendered`` (audiosep on its published evaluation files)
    nothing is mixed: the mixture is the clip ``mixture_id`` as it is, the target the clip ``target_id``, and the
    one written interferer is their difference, so ``mixture = target + interferer`` still holds.

Interferers are cropped or zero-padded to the target's length (zeros are below the loudness gate, so padding does
not change a clip's loudness).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from lassbench.errors import LassbenchError
from lassbench.scenes import Scene, placed_sources

LOUDNESS_BLOCK_SECONDS = 0.4  # BS.1770 gating block: shorter clips have no integrated loudness
LASSBENCH_PEAK = 0.99  # where the lassbench rule puts the peak of a mixture that would clip
DECLIP_PEAK = 0.9  # AudioSep's and DCASE 2024's de-clipping target
RULES = ("loudness", "energy_snr", "peak_snr", "energy_gain", "rendered")


@dataclass(frozen=True)
class ItemSpec:
    """Everything needed to render one item, and nothing that depends on the audio itself.

    ``snr_db`` holds one value per interferer in the rule's unit (LU for ``loudness``, energy dB for
    ``energy_snr``, peak dB for ``peak_snr``, gain dB for ``energy_gain``). ``target_lufs`` is the requested target
    loudness (``loudness`` rule only). ``mixture_id`` is the source holding the mixture itself (``rendered`` rule
    only: published mixtures read as they are). ``extra`` carries protocol-specific manifest columns.
    """

    item_id: str
    split: str
    target_id: str
    interferer_ids: tuple[str, ...]
    query: str
    captions: tuple[str, ...]
    labels: tuple[str, ...]
    rule: str
    snr_db: tuple[float, ...]
    target_lufs: float = math.nan
    mix_db: float = 0.0
    condition: str = ""
    protocol: str = "lassbench"
    seed: int = 0
    index: int = 0
    extra: tuple[tuple[str, str], ...] = field(default=())
    mixture_id: str = ""

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise LassbenchError(f"unknown mixing rule {self.rule!r}; expected one of {', '.join(RULES)}")
        if (self.rule == "rendered") != bool(self.mixture_id):
            raise LassbenchError(f"item {self.item_id}: a mixture_id goes with the rendered rule, and only with it")
        if len(self.snr_db) != len(self.interferer_ids):
            raise LassbenchError(f"item {self.item_id}: {len(self.snr_db)} SNRs for "
                                 f"{len(self.interferer_ids)} interferers")

    @property
    def source_ids(self) -> tuple[str, ...]:
        return (self.target_id, *self.interferer_ids, *((self.mixture_id,) if self.mixture_id else ()))


@dataclass
class RenderedItem:
    """The arrays of one item: ``mixture == target + sum(interferers)`` (up to float32 rounding)."""

    mixture: np.ndarray
    target: np.ndarray
    interferers: list[np.ndarray]
    spec: ItemSpec
    gain: float  # the common gain applied to avoid clipping (1.0 when none)
    target_lufs: float  # loudness of the target as it sits in the mixture (NaN when the rule does not use it)
    interferer_lufs: list[float]
    snr_db: float  # the item's target-to-interference ratio in the rule's unit


def integrated_loudness(x: np.ndarray, sample_rate: int) -> float:
    """BS.1770-4 integrated loudness (LUFS) of a mono signal: pyloudnorm's algorithm, with its own K-weighting
    filters, but gated with vectorised block sums (pyloudnorm loops over blocks in Python, ~5x slower).

    Returns ``-inf`` for silence; raises for input shorter than the 0.4 s gating block.
    """
    # float32 input is filtered in float32 (as pyloudnorm stores it; ~1e-5 LU from float64, twice as fast)
    x = np.asarray(x)
    x = x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)
    if x.ndim != 1:
        raise LassbenchError(f"integrated_loudness expects mono audio, got shape {x.shape}")
    block = LOUDNESS_BLOCK_SECONDS * sample_rate
    if x.shape[0] < block:
        raise LassbenchError(f"audio of {x.shape[0] / sample_rate:.3f} s is shorter than the 0.4 s loudness gate")
    sos, gain = _k_weighting(sample_rate)
    from scipy import signal  # imported on use: scipy.signal costs ~0.5 s of every start-up

    y = signal.sosfilt(sos.astype(x.dtype), x)
    y *= y.dtype.type(gain)
    # block bounds exactly as pyloudnorm computes them (400 ms blocks, 75 % overlap)
    duration = x.shape[0] / sample_rate
    count = int(np.round((duration - LOUDNESS_BLOCK_SECONDS) / (LOUDNESS_BLOCK_SECONDS * 0.25))) + 1
    j = np.arange(count)
    lower = (LOUDNESS_BLOCK_SECONDS * (j * 0.25) * sample_rate).astype(np.int64)
    upper = np.minimum((LOUDNESS_BLOCK_SECONDS * (j * 0.25 + 1) * sample_rate).astype(np.int64), y.shape[0])
    # energy between consecutive block bounds in one pass (np.cumsum over the whole signal is ~30x slower)
    bounds = np.unique(np.concatenate([lower, upper]))
    squared = np.square(y[:bounds[-1]])
    partial = np.concatenate([[0.0], np.cumsum(np.add.reduceat(squared, bounds[:-1], dtype=np.float64))])
    z = (partial[np.searchsorted(bounds, upper)] - partial[np.searchsorted(bounds, lower)]) / block
    with np.errstate(divide="ignore", invalid="ignore"):
        levels = -0.691 + 10.0 * np.log10(z)
        above_absolute = levels >= -70.0
        if not above_absolute.any():
            return -math.inf
        relative = -0.691 + 10.0 * np.log10(z[above_absolute].mean()) - 10.0
        gated = (levels > relative) & (levels > -70.0)
        if not gated.any():
            return -math.inf
        return float(-0.691 + 10.0 * np.log10(z[gated].mean()))


@functools.lru_cache(maxsize=16)
def _k_weighting(sample_rate: int) -> tuple[np.ndarray, float]:
    """pyloudnorm's K-weighting filters at ``sample_rate`` as one ``sos`` cascade, and their pass-band gain."""
    import pyloudnorm
    from scipy import signal

    stages = list(pyloudnorm.Meter(sample_rate)._filters.values())
    sos = np.vstack([signal.tf2sos(stage.b, stage.a) for stage in stages])
    return sos, math.prod(stage.passband_gain for stage in stages)


def db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def fit_length(x: np.ndarray, num_samples: int) -> np.ndarray:
    """Crop or zero-pad to ``num_samples``."""
    if x.shape[-1] == num_samples:
        return x
    if x.shape[-1] > num_samples:
        return x[..., :num_samples]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, num_samples - x.shape[-1])])


def energy(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def energy_snr_scale(target: np.ndarray, noise: np.ndarray, snr_db: float) -> float:
    """DCASE 2024's noise scale: ``sqrt(P_t / (P_n 10^(snr/10)))``, so that ``P_t / P_(scaled n) = 10^(snr/10)``."""
    noise_power = energy(noise)
    if noise_power == 0.0:
        raise LassbenchError("cannot scale a silent noise clip to an SNR")
    return math.sqrt(energy(target) / (10.0 ** (snr_db / 10.0)) / noise_power)


def energy_match_ratio(audio: np.ndarray, reference: np.ndarray) -> float:
    """AudioSep's ``get_energy_ratio``: ``sqrt(E_audio / max(E_reference, 1e-10))`` clamped to [0.02, 50]."""
    ratio = math.sqrt(energy(audio) / max(energy(reference), 1e-10))
    return min(max(ratio, 0.02), 50.0)


def render(spec: ItemSpec, audio: Mapping[str, np.ndarray], loudness: Mapping[str, float] | None = None
           ) -> RenderedItem:
    """Mix one item from mono arrays keyed by source id. ``loudness`` (LUFS per source id, as measured by
    :func:`integrated_loudness` on the very arrays in ``audio``) is needed by the ``loudness`` rule only."""
    missing = [sid for sid in spec.source_ids if sid not in audio]
    if missing:
        raise LassbenchError(f"item {spec.item_id}: no audio for source(s) {', '.join(missing)}")
    scene = dict(spec.extra).get("scene")
    if scene:  # a soundscape: each clip first moves to its place in the scene (lassbench.scenes)
        audio = placed_sources(Scene.from_json(scene), audio)
    # the loudness rule is plain scaling: float32 keeps it exact to ~1e-7 and is what makes builds fast; the energy
    # rules reproduce published float64 arithmetic
    dtype = np.float32 if spec.rule == "loudness" else np.float64
    target = np.asarray(audio[spec.target_id], dtype=dtype)
    noises = [fit_length(np.asarray(audio[sid], dtype=dtype), target.shape[0]) for sid in spec.interferer_ids]
    if spec.rule == "rendered":
        return _rendered(spec, target, np.asarray(audio[spec.mixture_id], dtype=dtype))
    mixer = {"loudness": _mix_loudness, "energy_snr": _mix_energy_snr, "peak_snr": _mix_peak_snr,
             "energy_gain": _mix_energy_gain}[spec.rule]
    return mixer(spec, target, noises, loudness)


def regenerate_scene(scene_json: str, audio: Mapping[str, np.ndarray], loudness: Mapping[str, float]
                     ) -> RenderedItem:
    """A soundscape item from its scene spec alone (its ``scene`` column, :mod:`lassbench.scenes`) and its source
    clips (as the build read them) with their loudness: the mixture the build wrote, bit-exactly."""
    scene = Scene.from_json(scene_json)
    target, *others = scene.events
    spec = ItemSpec(item_id="scene", split="", target_id=target.source_id,
                    interferer_ids=tuple(e.source_id for e in others), query="", captions=(), labels=(),
                    rule="loudness", snr_db=tuple(e.snr_db for e in others), target_lufs=scene.target_lufs,
                    extra=(("scene", scene_json),))
    return render(spec, audio, loudness)


def _rendered(spec, target, mixture) -> RenderedItem:
    """A published (mixture, target) pair as it is; the residual is written as the interferer."""
    if mixture.shape != target.shape:
        raise LassbenchError(f"item {spec.item_id}: mixture {spec.mixture_id} has {mixture.shape[0]} samples, "
                             f"target {spec.target_id} {target.shape[0]}: not a rendered pair")
    residual = mixture - target
    noise_energy, target_energy = energy(residual), energy(target)
    snr = math.inf if noise_energy == 0 else (10.0 * math.log10(target_energy / noise_energy) if target_energy > 0
                                              else -math.inf)
    return _finish(spec, mixture, target, [residual], 1.0, math.nan, [math.nan], snr)


def _mix_loudness(spec, target, noises, loudness) -> RenderedItem:
    if loudness is None:
        raise LassbenchError(f"item {spec.item_id}: the loudness rule needs the sources' loudness")
    levels = [loudness[sid] for sid in spec.source_ids]
    if not all(math.isfinite(v) for v in levels):
        raise LassbenchError(f"item {spec.item_id}: a source is silent (loudness -inf)")
    target = target * np.float32(db_to_gain(spec.target_lufs - levels[0]))
    wanted = [spec.target_lufs - snr for snr in spec.snr_db]
    noises = [n * np.float32(db_to_gain(w - lv)) for n, w, lv in zip(noises, wanted, levels[1:], strict=True)]
    mixture = target.copy()
    for noise in noises:
        mixture += noise
    peak = max(float(mixture.max()), -float(mixture.min())) if mixture.size else 0.0
    gain = LASSBENCH_PEAK / peak if peak > 1.0 else 1.0
    if gain != 1.0:
        for part in (mixture, target, *noises):
            part *= np.float32(gain)
    shift = 20.0 * math.log10(gain)
    # the SNR of the sum assumes the interferers' K-weighted energies add (they are independent clips)
    combined = -10.0 * math.log10(sum(10.0 ** (-s / 10.0) for s in spec.snr_db)) if spec.snr_db else math.inf
    return _finish(spec, mixture, target, noises, gain, spec.target_lufs + shift, [w + shift for w in wanted],
                   combined)


def _mix_energy_snr(spec, target, noises, loudness) -> RenderedItem:
    for noise, sid in zip(noises, spec.interferer_ids, strict=True):
        if not noise.any():  # the published evaluators would divide by zero and score NaN
            raise LassbenchError(f"item {spec.item_id}: noise clip {sid} is all zeros: no SNR can scale it")
    noises = [n * energy_snr_scale(target, n, snr) for n, snr in zip(noises, spec.snr_db, strict=True)]
    return _declip(spec, target, noises, float(spec.snr_db[0]) if len(spec.snr_db) == 1 else None)


def _mix_peak_snr(spec, target, noises, loudness) -> RenderedItem:
    target = target / _peak(target, spec)
    noises = [n / _peak(n, spec) / db_to_gain(snr) for n, snr in zip(noises, spec.snr_db, strict=True)]
    mixture = target + sum(noises)
    # voicefixer's unify_energy: one scale from the largest peak of (mixture, noise, target), so when the two clips
    # cancel at the target's peak the mixture stays below 1 rather than pushing the target above 1
    gain = 1.0 / max(_peak(mixture, spec), *(_peak(n, spec) for n in noises), 1.0)
    snr = float(spec.snr_db[0]) if len(spec.snr_db) == 1 else math.nan
    return _finish(spec, mixture * gain, target * gain, [n * gain for n in noises], gain, math.nan,
                   [math.nan] * len(noises), snr)


def _mix_energy_gain(spec, target, noises, loudness) -> RenderedItem:
    matched = [n / energy_match_ratio(n, target) * db_to_gain(g) for n, g in zip(noises, spec.snr_db, strict=True)]
    total = sum(matched)
    factor = db_to_gain(spec.mix_db) / energy_match_ratio(total, target)
    return _declip(spec, target, [n * factor for n in matched], None)


def _declip(spec, target, noises, snr: float | None) -> RenderedItem:
    mixture = target + sum(noises)
    peak = float(np.max(np.abs(mixture)))
    gain = DECLIP_PEAK / peak if peak > 1.0 else 1.0
    if snr is None:  # report the energy SNR actually realised
        noise_energy = energy(sum(noises))
        snr = 10.0 * math.log10(energy(target) / noise_energy) if noise_energy > 0 else math.inf
    return _finish(spec, mixture * gain, target * gain, [n * gain for n in noises], gain, math.nan,
                   [math.nan] * len(noises), snr)


def _peak(x: np.ndarray, spec: ItemSpec) -> float:
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak == 0.0:  # LASS-Net's release would divide by zero and score NaN
        raise LassbenchError(f"item {spec.item_id}: cannot peak-normalise an all-zero clip "
                             f"({', '.join(spec.source_ids)})")
    return peak


def _finish(spec, mixture, target, noises, gain, target_lufs, interferer_lufs, snr) -> RenderedItem:
    return RenderedItem(
        mixture=mixture.astype(np.float32, copy=False), target=target.astype(np.float32, copy=False),
        interferers=[n.astype(np.float32, copy=False) for n in noises], spec=spec, gain=float(gain),
        target_lufs=float(target_lufs), interferer_lufs=[float(v) for v in interferer_lufs], snr_db=float(snr),
    )


def loudness_of(sources: Mapping[str, np.ndarray], sample_rate: int, ids: Sequence[str] | None = None
                ) -> dict[str, float]:
    """Integrated loudness of each array (a helper for callers holding arrays in memory)."""
    keys = list(sources) if ids is None else list(ids)
    return {k: integrated_loudness(sources[k], sample_rate) for k in keys}
