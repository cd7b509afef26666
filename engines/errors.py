"""The one exception type a user can act on.

`UserError` marks a mistake the person at the keyboard can fix — a bad option, a missing
file, a config key out of range, a model that does not fit — and its message names the fix.
The CLI prints it as one line and exits 2. Anything else that escapes a command is a bug: the
CLI lets its traceback through and exits 1.

Each part keeps its own error class (``ConfigError``, ``DatasetError``, …) deriving from
`UserError`; most also derive from the builtin they always were (``ValueError``,
``RuntimeError``) so that callers catching those keep working.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; the message says how."""


class InvalidSetting(UserError, ValueError):
    """An option, config key or model-card value outside what is allowed."""


class MissingDependency(UserError, RuntimeError):
    """A library, driver or device that is not installed here; the message names the install."""


class InvalidInput(UserError, ValueError):
    """A file, frame or data set that is not what it must be (shape, format, contents)."""
