"""The store's errors: the database is away (retry later) or set up wrong (fix and restart).

`StoreUnavailable` is the one the writer retries: the driver's operational errors (connection
refused, server gone, database locked, disk full) turned into one type, so that nothing
outside the backends needs to know a driver. Every other error from a backend is a bug or a
batch the database refuses, and is not retried.
"""

from __future__ import annotations

from defectd.engines.errors import UserError


class StoreUnavailable(RuntimeError):
    """The database cannot be reached or cannot take writes now; retrying may succeed."""


class StoreError(UserError, RuntimeError):
    """A store set up wrong (URL, schema version, location); the message names the fix."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer defectd than this one."""
