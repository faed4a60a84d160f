"""Errors a user can fix from the message alone.

Every one derives from :class:`UserError`; the command-line tools print such
an error as one line and exit with status 1, while any other exception (a
bug) keeps its traceback. Each class also derives from the built-in error a
Python caller would expect (``ValueError``, ``FileNotFoundError``,
``FileExistsError``), so ``except FileNotFoundError`` still works.

This module imports nothing from the package: every layer may raise these.
"""
from __future__ import annotations


class UserError(Exception):
    """A mistake in the input, the config or the command: what is wrong and
    what to do, in the message."""


class ConfigError(UserError, ValueError):
    """A config (or a model's arguments) that cannot be right."""


class CheckpointError(UserError, ValueError):
    """A weights file that cannot be used, with the reason and what to do."""


class DataError(UserError, ValueError):
    """Input data that cannot be used as it is."""


class BadImageError(DataError):
    """An image file that is missing or cannot be decoded."""


class DataNotFoundError(UserError, FileNotFoundError):
    """A dataset path in a config that does not exist."""


class InputNotFoundError(UserError, FileNotFoundError):
    """A file or folder named on the command line (config, checkpoint, image) that does not exist."""


class OutputExistsError(UserError, FileExistsError):
    """An output that would replace something the user made; nothing is overwritten."""


class NotWritableError(UserError, PermissionError):
    """A folder the run must write into and may not (read-only, or another user's)."""


class InUseError(UserError):
    """A folder another process is using right now (a work dir a run is training in)."""


class UnsupportedError(UserError, ValueError):
    """A model, config or combination of options a tool does not handle."""
