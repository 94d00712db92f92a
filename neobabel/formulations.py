"""The prompt formulations of a gender-bias audit, in their one canonical order.

MAGBIG asks for the same subject in up to four ways; everything that lists, sorts or labels
formulations (magbig's prompt sets and reports, the world's bias table and caption heads)
takes the order from here. It lives in neobabel, next to the language registry, so that the
world can use it without importing magbig.

- ``direct``: the plain noun, a generic masculine in languages with grammatical gender
  ("a doctor", "eines Arztes");
- ``indirect``: a gender-neutral paraphrase ("a person who treats sick people");
- ``feminine``: the explicit feminine form ("einer Ärztin");
- ``gender_star``: German gender-inclusive spelling ("eine*r Ärzt*in").
"""

from __future__ import annotations

FORMULATIONS: tuple[str, ...] = ("direct", "indirect", "feminine", "gender_star")
