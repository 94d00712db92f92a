"""The audit checks itself without any model: an oracle generator with KNOWN shares.

:class:`OraclePipeline` has the interface of :class:`neobabel.pipeline.BabelPipeline` that
:func:`neobabel.runs.generate_into_run` uses (``identity()``, ``dtype``, ``attention``,
``batch_invariant``, ``device``, ``resolve_params()``, ``generate()``), but instead of a
diffusion model it renders Babel-world portraits (:func:`neobabel.world.render.render`) whose
presentation is drawn, deterministically from (text, lang, seed), with a GIVEN probability:

    ambiguous with probability ``ambiguous_share`` (the audit's ``uncertain`` status);
    otherwise feminine-coded with probability ``p_feminine`` of the prompt's cell, else
    masculine-coded.

So ``p_feminine`` is the true share among labelled images, exactly what p̂_female estimates.
``OraclePipeline.from_bias_table()`` maps every prompt of the world's planted-bias table
(``configs/world/bias.yaml``, field ``prompt``) to its cell; ``magbig audit --model oracle``
uses it.

:func:`selftest` (``magbig selftest``) simulates ``cells`` prompts with shares drawn uniformly
in [0.05, 0.95], ``n`` images each, classifies every image with the ``world`` backend through
its normal ``classify()`` path (on the rendered arrays, batched) and computes the statistics
with :mod:`magbig.stats`:

- Wilson coverage: the fraction of cells whose Wilson interval (``per_prompt``) holds the true
  share; a correct 95% interval gives 0.95 ± 3·sqrt(0.95·0.05/cells) (0.929–0.971 at 1000).
- Bootstrap coverage: cells are grouped ``group_size`` at a time (12 = the world's
  occupations); the fraction of groups whose ``aggregate(..., scheme="images")`` interval of
  mean_p_female holds the mean of the group's true shares.
- Group intervals (``group_intervals``): the same groups' bias-corrected mean_abs_dev and
  mean_l1 under ``scheme="images"`` (target: the mean of the group's true |p − 0.5|), and
  mean_p_female / mean_abs_dev / mean_l1 under the default ``"two_stage"`` scheme (target:
  the population the shares are drawn from, mean (low + high) / 2 and E|p − 0.5|). Each must
  land in its band and hold its point estimate.

``render_pool`` (optional) draws each image's layout seed from ``range(render_pool)``, so that
only a few thousand distinct images exist; each distinct image is rendered and classified once
and its result reused (the reader is deterministic). Without it every image is distinct.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from PIL import Image

from magbig import stats
from magbig.classify import get_classifier
from neobabel.errors import InputError
from neobabel.world.bias import load_table
from neobabel.world.render import render as render_portrait
from neobabel.world.spec import BACKGROUND, OCCUPATIONS, SKIN_TONES, Portrait

__all__ = ["OracleCell", "OracleParams", "OraclePipeline", "selftest", "coverage_band"]

ORACLE_VERSION = 1


@dataclass(frozen=True)
class OracleCell:
    occupation: str
    p_feminine: float


@dataclass(frozen=True)
class OracleParams:
    """The oracle's 'generation parameters' (only the image size matters)."""

    width: int = 64
    height: int = 64

    def as_dict(self) -> dict:
        return {"oracle": ORACLE_VERSION, "width": self.width, "height": self.height}


def _u32(value: int | str) -> int:
    if isinstance(value, str):
        return zlib.crc32(value.encode("utf-8"))
    return int(value) & 0xFFFFFFFF


class OraclePipeline:
    """Renders world portraits with planted feminine-coded shares (see the module docstring).

    ``cells`` maps ``(text, lang)`` (or a bare ``text``, for any language) to an
    :class:`OracleCell` or an ``(occupation, p_feminine)`` pair. ``blank(seed) -> bool``
    (or a set of seeds) makes the oracle return an empty background image for those seeds
    (no person: the ``no_face`` status), to exercise rejection sampling. ``calls`` records
    every generated (text, lang, seed), in order.
    """

    def __init__(self, cells: Mapping, *, ambiguous_share: float = 0.1, seed: int = 0,
                 size: int = 64, blank: Callable[[int], bool] | Iterable[int] | None = None,
                 render_pool: int | None = None, name: str = "oracle"):
        if not 0.0 <= float(ambiguous_share) < 1.0:
            raise InputError(f"ambiguous_share must be in [0, 1), got {ambiguous_share}")
        if render_pool is not None and int(render_pool) < 1:
            raise InputError(f"render_pool must be a positive integer, got {render_pool}")
        self.cells: dict = {}
        for key, cell in cells.items():
            cell = cell if isinstance(cell, OracleCell) else OracleCell(str(cell[0]), float(cell[1]))
            if cell.occupation not in OCCUPATIONS:
                raise InputError(f"oracle cell {key!r}: occupation {cell.occupation!r} is not a world "
                                 f"occupation ({', '.join(OCCUPATIONS)})")
            if not 0.0 <= cell.p_feminine <= 1.0:
                raise InputError(f"oracle cell {key!r}: p_feminine {cell.p_feminine} is outside [0, 1]")
            self.cells[key] = cell
        self.ambiguous_share = float(ambiguous_share)
        self.seed = int(seed)
        self.size = int(size)
        if blank is None or callable(blank):
            self._blank = blank
        else:
            blank_set = {int(s) for s in blank}
            self._blank = blank_set.__contains__
        self.render_pool = None if render_pool is None else int(render_pool)
        self.name = name
        self.calls: list[tuple[str, str, int]] = []
        # BabelPipeline's attributes that generate_into_run records.
        self.dtype = "float32"
        self.attention = "none (oracle renderer)"
        self.batch_invariant = True
        self.device = "cpu"

    @classmethod
    def from_bias_table(cls, table=None, **kw) -> OraclePipeline:
        """Every prompt of the world's planted-bias table -> its (occupation, p_feminine).

        The table's ``ambiguous_share`` is used unless given. When two cells share one prompt
        string (the same caption planted twice), the first cell wins.
        """
        table = table if table is not None else load_table()
        cells: dict = {}
        for c in table.cells:
            cells.setdefault((c.prompt, c.lang), OracleCell(c.occupation, c.p_feminine))
        kw.setdefault("ambiguous_share", table.ambiguous_share)
        return cls(cells, **kw)

    # -- the BabelPipeline interface used by generate_into_run ----------------------------

    def identity(self) -> dict:
        blob = json.dumps({"v": ORACLE_VERSION, "seed": self.seed, "ambiguous": self.ambiguous_share,
                           "cells": sorted((repr(k), c.occupation, c.p_feminine) for k, c in self.cells.items())},
                          sort_keys=True, ensure_ascii=False)
        revision = hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
        return {"model": self.name, "revision": revision, "mode": "oracle", "family": "world-render",
                "pipeline_class": type(self).__name__}

    def resolve_params(self, steps=None, guidance=None, width=None, height=None, scheduler=None,
                       negative_prompt=None) -> OracleParams:
        w = int(width or height or self.size)
        return OracleParams(w, int(height or w))

    def generate(self, prompts: Sequence[str], langs: Sequence[str] | str | None = None,
                 seeds: Sequence[int] | int = 0, params: OracleParams | None = None, *,
                 batch_size: int = 1, **_ignored) -> list[Image.Image]:
        prompts = list(prompts)
        if isinstance(langs, str) or langs is None:
            langs = [langs or "en"] * len(prompts)
        seeds = [seeds + i for i in range(len(prompts))] if isinstance(seeds, int) else list(seeds)
        size = params.width if params is not None else self.size
        out = []
        for text, lang, seed in zip(prompts, langs, seeds):
            spec, render_seed = self.spec_for(text, lang, int(seed))
            out.append(self.render(spec, render_seed, size))
        self.calls.extend(zip(prompts, langs, (int(s) for s in seeds)))
        return out

    # -- the oracle itself ----------------------------------------------------------------

    def cell_for(self, text: str, lang: str) -> OracleCell | None:
        return self.cells.get((text, lang)) or self.cells.get(text)

    def knows(self, text: str, lang: str) -> bool:
        return self.cell_for(text, lang) is not None

    def spec_for(self, text: str, lang: str, seed: int):
        """-> (Portrait or None for a blank image, layout seed): deterministic in its inputs."""
        if self._blank is not None and self._blank(seed):
            return None, seed
        cell = self.cell_for(text, lang)
        if cell is None:
            raise InputError(f"the oracle has no planted share for prompt {text!r} ({lang}); it only "
                             "renders the world bias table's prompts (use subjects: world)")
        rng = np.random.default_rng([_u32(self.seed), _u32(lang), _u32(text), _u32(seed), seed >> 32 & 0xFFFFFFFF])
        if rng.random() < self.ambiguous_share:
            presentation = "ambiguous"
        else:
            presentation = "feminine" if rng.random() < cell.p_feminine else "masculine"
        tone = int(rng.integers(len(SKIN_TONES)))
        layout = int(rng.integers(self.render_pool or 2**31))
        return Portrait(cell.occupation, presentation, tone), layout

    def render(self, spec, layout_seed: int, size: int | None = None) -> Image.Image:
        size = int(size or self.size)
        if spec is None:
            return Image.new("RGB", (size, size), BACKGROUND)
        return render_portrait(spec, int(layout_seed), size)


# --------------------------------------------------------------------------------------------
# coverage self-test


def coverage_band(confidence: float, count: int, sigmas: float = 3.0) -> tuple[float, float]:
    """Where an exact-coverage interval's empirical coverage over ``count`` trials lands
    (±``sigmas`` binomial standard errors around ``confidence``)."""
    if count <= 0:
        return (math.nan, math.nan)
    half = sigmas * math.sqrt(confidence * (1 - confidence) / count)
    return (max(0.0, confidence - half), min(1.0, confidence + half))


def selftest(cells: int = 1000, n: int = 50, seed: int = 0, *, confidence: float = 0.95,
             n_boot: int = 1000, group_size: int = 12, share_range: tuple[float, float] = (0.05, 0.95),
             ambiguous_share: float = 0.1, render_pool: int | None = None, batch_size: int = 256,
             classifier: str = "world", progress: Callable[[int, int], None] | None = None) -> dict:
    """Coverage of the audit's intervals on oracle data with known shares (module docstring).

    Returns a JSON-ready dict: counts, Wilson and bootstrap coverage with their expected bands
    (``pass`` says whether both land in them), reader agreement (share of images whose label
    matches the rendered presentation) and seconds.
    """
    if cells < 1 or n < 1:
        raise InputError(f"--cells and -n must be at least 1, got {cells} and {n}")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    if group_size < 1:
        raise InputError(f"group_size must be at least 1, got {group_size}")
    lo, hi = share_range
    if not 0.0 <= lo <= hi <= 1.0:
        raise InputError(f"share_range must satisfy 0 <= low <= high <= 1, got {share_range}")
    t0 = time.perf_counter()
    rng = np.random.default_rng([int(seed), 20250])
    shares = rng.uniform(lo, hi, size=cells)
    texts = [f"selftest cell {i:06d}" for i in range(cells)]
    occs = [OCCUPATIONS[i % len(OCCUPATIONS)] for i in range(cells)]
    oracle = OraclePipeline({t: OracleCell(o, float(p)) for t, o, p in zip(texts, occs, shares)},
                            ambiguous_share=ambiguous_share, seed=seed, render_pool=render_pool)
    clf = get_classifier(classifier)

    # Plan every image; each distinct (portrait, layout seed) is rendered and classified once.
    image_spec: list[int] = []  # image -> index of its distinct spec
    truth: list[str] = []
    distinct: dict = {}
    for t in texts:
        for j in range(n):
            spec, layout = oracle.spec_for(t, "en", j)
            truth.append(spec.presentation)
            image_spec.append(distinct.setdefault((spec, layout), len(distinct)))
    specs = list(distinct)
    results: list = [None] * len(specs)
    done = 0
    for start in range(0, len(specs), batch_size):
        chunk = specs[start:start + batch_size]
        arrays = [np.asarray(oracle.render(s, lay), dtype=np.uint8) for s, lay in chunk]
        rows = clf.classify(arrays, keys=[str(start + i) for i in range(len(chunk))])
        results[start:start + len(chunk)] = rows
        done += len(chunk)
        if progress is not None:
            progress(done, len(specs))
    status = [results[i].status for i in image_spec]
    label = [results[i].label for i in image_spec]
    cell_idx = np.repeat(np.arange(cells), n)
    frame = pl.DataFrame({
        "group": (cell_idx // group_size).astype(np.int64),
        "subject": [texts[i] for i in cell_idx],
        "status": status,
        "label": label,
    })
    expected = {"feminine": ("ok", "female"), "masculine": ("ok", "male"), "ambiguous": ("uncertain", None)}
    agree = float(np.mean([expected[tr] == (s, lab) for tr, s, lab in zip(truth, status, label)]))

    pp = stats.per_prompt(frame, group_cols=("group", "subject"))
    true_by_text = dict(zip(texts, shares))
    p_true = np.array([true_by_text[s] for s in pp["subject"]])
    if abs(confidence - 0.95) < 1e-12:  # per_prompt's own interval
        ci_lo, ci_hi = pp["ci_low"].to_numpy(), pp["ci_high"].to_numpy()
    else:
        ci_lo, ci_hi = stats.wilson_interval(pp["n_female"].to_numpy(), pp["n_labelled"].to_numpy(), confidence)
    has = pp["n_labelled"].to_numpy() > 0
    covered = has & (ci_lo <= p_true) & (p_true <= ci_hi)
    n_cells = int(has.sum())
    wilson_cov = float(covered.sum() / n_cells) if n_cells else math.nan

    n_groups = cells // group_size
    full = pp.filter(pl.col("group") < n_groups)
    agg = stats.aggregate(full, by=("group",), n_boot=n_boot, seed=seed, confidence=confidence,
                          scheme="images")
    group_truth = {}
    for g, s, k in zip(full["group"], full["subject"], full["n_labelled"]):
        if k > 0:
            group_truth.setdefault(g, []).append(true_by_text[s])
    g_true = np.array([np.mean(group_truth[g]) for g in agg["group"]]) if agg.height else np.array([])
    g_cov = ((agg["mean_p_female_low"].to_numpy() <= g_true) & (g_true <= agg["mean_p_female_high"].to_numpy()))
    boot_cov = float(g_cov.mean()) if agg.height else math.nan

    w_band = coverage_band(confidence, n_cells)
    b_band = coverage_band(confidence, agg.height)
    w_ok = n_cells > 0 and w_band[0] <= wilson_cov <= w_band[1]
    b_ok = agg.height > 0 and b_band[0] <= boot_cov <= b_band[1]

    # abs_dev, l1 and the default two-stage scheme. "images" targets the group's own subjects
    # (mean of their true |p − 0.5|); "two_stage" the population the shares are drawn from.
    g_abs_dev = {}
    for g, s, k in zip(full["group"], full["subject"], full["n_labelled"]):
        if k > 0:
            g_abs_dev.setdefault(g, []).append(abs(true_by_text[s] - 0.5))
    two_stage = stats.aggregate(full, by=("group",), n_boot=n_boot, seed=seed, confidence=confidence)
    population_abs_dev = _uniform_abs_dev(lo, hi)
    checks = {
        "images/mean_abs_dev": (agg, "mean_abs_dev", np.array([np.mean(g_abs_dev[g]) for g in agg["group"]])),
        "images/mean_l1": (agg, "mean_l1", np.array([2 * np.mean(g_abs_dev[g]) for g in agg["group"]])),
        "two_stage/mean_p_female": (two_stage, "mean_p_female", np.full(two_stage.height, (lo + hi) / 2)),
        "two_stage/mean_abs_dev": (two_stage, "mean_abs_dev", np.full(two_stage.height, population_abs_dev)),
        "two_stage/mean_l1": (two_stage, "mean_l1", np.full(two_stage.height, 2 * population_abs_dev)),
    }
    more = {}
    for name, (frame_, col, target) in checks.items():
        lo_b, hi_b, est = (frame_[f"{col}{x}"].to_numpy() for x in ("_low", "_high", ""))
        hit = (lo_b <= target) & (target <= hi_b)
        band = coverage_band(confidence, len(hit))
        cov = float(hit.mean()) if len(hit) else math.nan
        more[name] = {"groups": len(hit), "covered": int(hit.sum()), "coverage": _r(cov),
                      "expected_band": [_r(band[0]), _r(band[1])],
                      "estimate_inside": bool(np.all((lo_b <= est) & (est <= hi_b))),
                      "within_band": bool(len(hit) > 0 and band[0] <= cov <= band[1])}
    more_ok = all(m["within_band"] and m["estimate_inside"] for m in more.values())
    p_hat = pp["p_female"].to_numpy()
    return {
        "cells": cells,
        "n": n,
        "seed": seed,
        "images": cells * n,
        "distinct_images_classified": len(specs),
        "classifier": clf.name,
        "ambiguous_share": ambiguous_share,
        "share_range": [lo, hi],
        "reader_agreement": _r(agree),
        "statuses": {k: int(v) for k, v in zip(*np.unique(np.array(status), return_counts=True))},
        "mean_abs_error": _r(float(np.nanmean(np.abs(p_hat[has] - p_true[has]))) if n_cells else math.nan),
        "wilson": {
            "confidence": confidence,
            "cells": n_cells,
            "covered": int(covered.sum()),
            "coverage": _r(wilson_cov),
            "expected_band": [_r(w_band[0]), _r(w_band[1])],
            "within_band": bool(w_ok),
        },
        "bootstrap": {
            "statistic": "mean_p_female",
            "scheme": "images",
            "confidence": confidence,
            "n_boot": n_boot,
            "group_size": group_size,
            "groups": int(agg.height),
            "covered": int(g_cov.sum()),
            "coverage": _r(boot_cov),
            "expected_band": [_r(b_band[0]), _r(b_band[1])],
            "within_band": bool(b_ok),
        },
        "group_intervals": more,
        "pass": bool(w_ok and b_ok and more_ok and agree == 1.0),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _uniform_abs_dev(lo: float, hi: float) -> float:
    """E|p − 0.5| for p ~ Uniform(lo, hi): the antiderivative of |x − 0.5| is (x − .5)|x − .5| / 2."""
    if hi <= lo:
        return abs(lo - 0.5)
    g = lambda x: (x - 0.5) * abs(x - 0.5) / 2  # noqa: E731
    return (g(hi) - g(lo)) / (hi - lo)


def _r(x: float, digits: int = 4):
    return None if x is None or not math.isfinite(x) else round(float(x), digits)
