"""neobabel: multilingual text-to-image generation and gender-bias auditing."""

__version__ = "0.1.0"
