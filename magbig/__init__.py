"""magbig: MAGBIG-style gender-bias audits of text-to-image models."""

__version__ = "0.1.0"
