"""Statistics for MAGBIG-style audits: small pure functions over polars frames.

Scales, named so nobody confuses them:

- ``p_female``: share of labelled faces perceived as female, in [0, 1].
- ``abs_dev = |p_female - 0.5|``: distance from parity, in [0, 0.5].
- ``l1 = 2 |p_female - 0.5|``: MAGBIG's L1 deviation of the (female, male) distribution from
  (0.5, 0.5), in [0, 1]. Always exactly ``2 * abs_dev``.

Sampling noise alone makes ``abs_dev`` positive: a perfectly fair model measured on n = 100
images has E|p̂ - 0.5| = 0.040 (``noise_floor``). Report it beside every deviation.

Bias-corrected mean abs_dev (``aggregate``'s ``mean_abs_dev``; ``paired_tests`` on abs_dev/l1
compares both sides at their common n instead, where the noise floor cancels: ``stats.paired``).
|p̂ − 0.5| overestimates |p − 0.5| by up to the noise floor, most near p = 0.5, and no unbiased
estimator of |p − 0.5| exists for a binomial share (only polynomials of degree ≤ n in p have
one). Subtracting the noise floor would over-correct skewed prompts (whose |p̂ − 0.5| is already
almost unbiased); the plug-in bootstrap correction 2|p̂ − .5| − E_p̂|p̂* − .5| leaves about 60%
of the bias at p = 0.5, which at 150 prompts is several standard errors. So each prompt with k
of n labelled faces female contributes ``h_n(k)`` (``abs_dev_bc``), the estimator that is
exactly unbiased at p = 0.5 and, among those, minimises the squared bias integrated over
p ∈ [0, 1] plus ``_BC_SMOOTH`` × the squared curvature (second differences in k) of its
correction h_n(k) − |k/n − 0.5|, which keeps its variance down: one small linear solve per n
(``abs_dev_estimator``). Its residual bias averaged over p ∈ [0.2, 0.8] is −0.0011 at n = 100,
−0.0023 at 50, −0.0075 at 16 and −0.021 at 8; the price is variance near p = 0.5 (the terms
are negative there, so that their mean can be 0). Single h_n(k) values can be negative; only
their means are meaningful. The interval over subjects is Student-t on the h_n(k) terms
(the percentile bootstrap undercovered at 20 subjects), with a variance between the terms'
sample variance (too small when the terms are skewed: shares near 0 or 1 at small n) and the
add-one model variance (too large there): their geometric mean. A second, image-level bootstrap
stage is not added: the between-subject spread of h_n(k) already holds the image noise, and
re-adding it (the previous two-stage scheme) shifted the whole interval upward. Coverage by
simulation: benchmarks/RESULTS.md, "abs_dev intervals". The raw mean |p̂ − 0.5| (MAGBIG's and
Fair Diffusion's published scale) stays available as ``mean_abs_dev_raw`` / ``mean_l1_raw``.

Everything random takes a ``seed`` and derives one numpy Generator per group from
``(seed, group key)``, so a group's numbers do not change when other groups are added.

Modules: ``shares`` (per-proportion primitives, h_n), ``tables`` (labels -> per-prompt counts,
files), ``aggregates`` (means over subjects), ``paired`` (paired tests, Holm), ``comparisons``
(expected maximum unfairness, language spread, Spearman, Cohen's kappa), ``summary`` (what
``magbig stats`` prints). Import from ``magbig.stats``; the submodules are an implementation detail.
"""

from magbig.stats._common import GROUP_KEYS, PROMPT_KEYS, STATUSES
from magbig.stats.aggregates import _NOTE_CONSTANT, _NOTE_ONE_SUBJECT, aggregate  # noqa: F401 (notes: for callers that test them)
from magbig.stats.comparisons import (
    cohen_kappa, expected_max_unfairness, language_spread, spearman_between_languages,
)
from magbig.stats.paired import holm, paired_tests
from magbig.stats.shares import abs_dev_estimator, noise_floor, rogan_gladen, wilson_interval
from magbig.stats.summary import summarize_labels_table
from magbig.stats.tables import parse_fairface_counts, per_prompt, read_labels_table, read_table

__all__ = [
    "GROUP_KEYS",
    "PROMPT_KEYS",
    "STATUSES",
    "abs_dev_estimator",
    "aggregate",
    "cohen_kappa",
    "expected_max_unfairness",
    "holm",
    "language_spread",
    "noise_floor",
    "paired_tests",
    "parse_fairface_counts",
    "per_prompt",
    "read_labels_table",
    "read_table",
    "rogan_gladen",
    "spearman_between_languages",
    "summarize_labels_table",
    "wilson_interval",
]
