"""Error types the CLIs translate into exit codes.

InputError: the user gave something bad (unknown language, malformed file, missing model).
The CLIs print its one-line message and exit 2. Anything else that escapes is a runtime
failure: one line, exit 1.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from the user; the message names the bad value and the fix."""


class ModelNotAvailableError(InputError):
    """A model's weights are not present locally (we never download at run time)."""
