"""neobabel: multilingual text-to-image generation and gender-bias auditing."""

import neobabel._logging  # noqa: F401  (library loggers quiet by default)

__version__ = "0.1.0"
