"""Errors are Python exceptions carrying the server's code and message: every code of
common/st_err.h (the extension's st_strerror table) has its exception class, and an error
raised by the store or the server arrives with its code and text, the same in both modes."""
import re

import pandas as pd
import pytest

import strata
from strata import _core

# st_strerror's name of each code -> the class that carries it
WANT = {"invalid argument": strata.InvalidArgument, "not found": strata.NotFound,
        "already exists": strata.AlreadyExists, "type mismatch": strata.TypeMismatch,
        "I/O error": strata.StorageError, "corruption": strata.Corrupt,
        "cancelled": strata.Cancelled, "out of memory": strata.OutOfMemory,
        "limit exceeded": strata.LimitExceeded, "busy": strata.Busy,
        "protocol error": strata.ProtocolError, "authentication failed": strata.AuthError,
        "closed": strata.Unavailable, "out of range": strata.OutOfRange,
        "replica too stale": strata.Stale, "unavailable": strata.Unavailable}


def test_every_code_has_its_class():
    names = _core.code_names()
    assert sorted(names.values()) == sorted(WANT)
    for code, name in names.items():
        assert strata._CODES[code] is WANT[name], (code, name)
    for cls in set(WANT.values()):
        assert issubclass(cls, strata.Error) and cls.__name__ in strata.__all__


def test_store_errors_carry_code_and_message(client, tname):
    client.create_table(tname, {"age": "i64"})
    with pytest.raises(strata.AlreadyExists) as e:
        client.create_table(tname, {"age": "i64"})
    assert e.value.code == -30997 and tname in e.value.message and str(e.value) == e.value.message
    with pytest.raises(strata.NotFound) as e:
        client.drop_table(tname + "_no")
    assert e.value.code == -30998 and tname + "_no" in e.value.message


def test_same_messages_in_both_modes(server, tmp_path, tname):
    """The server forwards the store's code and text: the same exception in both modes."""
    got = []
    for c in (strata.open(str(tmp_path / "d")), strata.connect(server.addr)):
        with c:
            c.create_table(tname, {"age": "i64"}, retention="1d")
            errs = []
            for call in (lambda: c.drop_table(tname + "_no"),
                         lambda: c.create_table(tname, {"x": "i64"}),
                         lambda: c.get(tname, "e", ["age"],
                                       as_of=pd.Timestamp.now(tz="UTC") - pd.Timedelta("3d")),
                         lambda: c.history(tname + "_no", "e", "age")):
                with pytest.raises(strata.Error) as e:
                    call()
                # the message as the store wrote it (times differ between the two runs)
                errs.append((type(e.value), e.value.code, re.sub(r"\d", "0", e.value.message)))
            got.append(errs)
    assert [t for t, _, _ in got[0]] == [strata.NotFound, strata.AlreadyExists,
                                         strata.OutOfRange, strata.NotFound]
    assert "retention horizon" in got[0][2][2] and got[0] == got[1]
