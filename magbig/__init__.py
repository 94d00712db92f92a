"""magbig: MAGBIG-style gender-bias audits of text-to-image models."""

import neobabel._logging  # noqa: F401  (library loggers, magbig's included, quiet by default)

__version__ = "0.1.0"
