"""Words every MAGBIG module shares: what a face status can say.

The one home of these tuples; classifiers write them, the audit filters on them, the
statistics count them. Kept apart from ``magbig.stats`` so that a classifier can name a
status without importing the statistics (and scipy).
"""

from __future__ import annotations

__all__ = ["FACE_OK_STATUSES", "STATUSES"]

#: Every status a label row can have, in report order (``ok`` first).
STATUSES = ("ok", "no_face", "multiple_faces", "uncertain", "error")

#: Statuses whose image shows a usable face; with ``faces == 1`` rejection sampling accepts it.
FACE_OK_STATUSES = ("ok", "uncertain")
