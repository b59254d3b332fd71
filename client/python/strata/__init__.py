"""strata: the Python client of the Strata feature store. DataFrames in, DataFrames out.

    import strata
    with strata.connect("127.0.0.1:7070") as c:          # or strata.open("/path/to/data")
        c.create_table("user_profile", {"age": "i64", "emb": "f32[64]"}, ttl="30d")
        c.put_df("user_profile", df, entity_column="user_id", ts_column="ts")
        train = c.join("user_profile", samples, ["age", "emb"])
        c.get("user_profile", "u42", ["age"]).to_dict()

See docs/python.md for the walkthrough."""
import numpy as _np

from . import _core
from .client import Client, GetResult, Job, Table
from .errors import (AlreadyExists, AuthError, Busy, Cancelled, Corrupt, Error,
                     InvalidArgument, LimitExceeded, NotFound, OutOfMemory, OutOfRange,
                     ProtocolError, Stale, StorageError, TypeMismatch, Unavailable,
                     CODES as _CODES)

__all__ = ["connect", "open", "Client", "GetResult", "Job", "Table", "Error",
           "InvalidArgument", "NotFound", "AlreadyExists", "TypeMismatch", "StorageError",
           "Corrupt", "Cancelled", "OutOfMemory", "LimitExceeded", "Busy", "ProtocolError",
           "AuthError", "Unavailable", "OutOfRange", "Stale"]

_core.register(_CODES, Unavailable, lambda b: _np.frombuffer(b, dtype=_np.float32),
               lambda b: _np.frombuffer(b, dtype=_np.int64))


def _timeout_ms(timeout, what):
    if timeout is None:
        return 0
    if hasattr(timeout, "total_seconds"):
        timeout = timeout.total_seconds()
    if timeout < 0:
        raise InvalidArgument(f"{what}: negative timeout")
    return max(1, int(timeout * 1000)) if timeout else 0


def connect(addr, token=None, timeout=30.0, connect_timeout=5.0, allow_any_ts=False):
    """Connects to a stratad server at "host:port" ("[v6]:port"), or to a cluster through seed
    nodes: a list of such addresses (or one string "a:1,b:2"), the first that answers is
    asked for the layout and requests go to each entity's primary; token is the server's
    shared secret. timeout bounds each call's wait for the server (seconds or timedelta,
    None = no limit). Connections are opened as threads need them (one is opened now, so a
    wrong address or token fails here). allow_any_ts: accept integer timestamps outside
    1990-2200 in their ts_unit (refused by default as a unit mistake). Returns a Client."""
    if isinstance(addr, (list, tuple)) and addr and all(isinstance(a, str) for a in addr):
        addr = ",".join(addr)
    if not isinstance(addr, str) or not addr:
        raise InvalidArgument("connect: addr must be 'host:port' or a list of them")
    core = _core.connect(addr, token, _timeout_ms(connect_timeout, "connect_timeout") or 5000,
                         _timeout_ms(timeout, "timeout"))
    return Client(core, ("server", addr, token, timeout, connect_timeout), allow_any_ts)


def open(path, allow_any_ts=False):  # noqa: A001 - mirrors the built-in: strata.open(dir)
    """Opens (creating if needed) an embedded store in the directory `path`, in this
    process: no server. Only one process may have a store open. Preload jobs run in
    background threads of this process. allow_any_ts as in connect. Returns a Client."""
    import os
    path = os.fspath(path)
    return Client(_core.open_embedded(path), ("embedded", os.path.abspath(path)), allow_any_ts)
