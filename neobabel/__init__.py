"""neobabel: multilingual text-to-image generation and gender-bias auditing."""

from neobabel import _logging as _logging  # noqa: F401  (library loggers quiet by default)

__version__ = "0.1.0"
