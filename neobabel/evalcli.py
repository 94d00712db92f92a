"""`neobabel eval ...`: alignment benchmarks over a run directory or a folder of images.

One function per command; the options several commands share are module-level helpers, so
other eval commands (dpg, consistency) can be added from their own modules.
"""

from __future__ import annotations

from neobabel.clikit import new_app

eval_app = new_app("Alignment benchmarks: m-GenEval (and later m-DPG, cross-lingual consistency).")
