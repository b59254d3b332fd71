"""strata exceptions: one class per error code of the store and the server, so callers can
catch what they mean (``except strata.NotFound``). Every exception carries ``code`` (the
numeric code, the same on the wire and in libstrata) and ``message`` (the server's text)."""


class Error(Exception):
    """Base class of every strata error."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        self.code = code


class InvalidArgument(Error, ValueError):
    """Malformed argument or input (bad name, bad timestamp, missing column...)."""


class NotFound(Error, LookupError):
    """No such table, feature, job."""


class AlreadyExists(Error):
    """The table (or feature) already exists."""


class TypeMismatch(Error, TypeError):
    """A value or column does not match the feature's type."""


class StorageError(Error):
    """The store failed to read or write (RocksDB, file system)."""


class Corrupt(Error):
    """On-disk data failed a check."""


class Cancelled(Error):
    """The operation (or preload job) was cancelled."""


class OutOfMemory(Error, MemoryError):
    """Out of memory here or on the server."""


class LimitExceeded(Error):
    """A limit was exceeded (value or frame size, connections)."""


class Busy(Error):
    """The resource is busy."""


class ProtocolError(Error):
    """Malformed frame or unknown operation: client and server disagree."""


class AuthError(Error):
    """Authentication required or wrong token."""


class Unavailable(Error):
    """The server cannot be reached, closed the connection or timed out, or the client is
    closed."""


class OutOfRange(Error, LookupError):
    """A read or join row before the table's retention horizon: that history is not kept."""


class Stale(Unavailable):
    """A replica is further behind than the read allows (a cluster's replica reads)."""


# Codes from common/st_err.h, in order from ST_ERR_FIRST (-30999): ST_ECLOSED and ST_EUNAVAIL
# (no node reachable; a write's outcome unknown) are both Unavailable. tests/test_errors.py
# checks this against the extension's st_strerror table.
_BY_ORDER = [InvalidArgument, NotFound, AlreadyExists, TypeMismatch, StorageError, Corrupt,
             Cancelled, OutOfMemory, LimitExceeded, Busy, ProtocolError, AuthError,
             Unavailable, OutOfRange, Stale, Unavailable]
CODES = {-30999 + i: cls for i, cls in enumerate(_BY_ORDER)}
