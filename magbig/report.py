"""Compatibility name for :mod:`magbig.reporting`, where the report code lives now.

``from magbig.report import build_report, write_report`` keeps working; new code imports
from :mod:`magbig.reporting`.
"""

from magbig.reporting import (
    FACE_STATUSES,
    FORMULATION_ORDER,
    INTERVALS_NOTE,
    SCALES_NOTE,
    SECTIONS,
    SUMMARY_VERSION,
    Report,
    build_report,
    write_report,
)

_SECTIONS = SECTIONS  # the name the page's section list had here

__all__ = ["Report", "build_report", "write_report"]
