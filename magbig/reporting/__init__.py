"""Audit reports: ``summary.json``, one self-contained ``report.html`` and ``report.md``.

Layers, each importing only those above it in this list:

- :mod:`.format`: numbers, intervals and p-values as text; the notes every rendering shares.
- :mod:`.plots`: matplotlib figures as base64 PNG.
- :mod:`.html` (Jinja2 templates in ``templates/``, autoescaped) and :mod:`.markdown`.
- :mod:`.model`: the :class:`Report`, ``summary()`` and :func:`write_report`.
- :mod:`.build`: :func:`build_report`, which calls :mod:`magbig.stats` once for everything.
"""

from magbig.reporting.build import build_report
from magbig.reporting.format import FORMULATION_ORDER, INTERVALS_NOTE, SCALES_NOTE
from magbig.reporting.html import SECTIONS
from magbig.reporting.model import FACE_STATUSES, SUMMARY_VERSION, Report, write_report

__all__ = ["FACE_STATUSES", "FORMULATION_ORDER", "INTERVALS_NOTE", "SCALES_NOTE", "SECTIONS",
           "SUMMARY_VERSION", "Report", "build_report", "write_report"]
