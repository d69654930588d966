"""User-facing errors: one line that names the file and the problem, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input, a missing file, an unwritable output: the CLI prints it as one line and
    exits with status 2. Bugs are left as ordinary exceptions (with a traceback)."""
