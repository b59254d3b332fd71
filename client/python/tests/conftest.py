"""Fixtures: every test that takes `client` runs twice, against an embedded store in a temp
dir (strata.open) and against a real stratad started here (strata.connect), so both modes
are held to the same answers. STRATA_BIN names the bin dir (default: bin at the repo root)."""
import os
import subprocess
import tempfile
import time
import uuid

import pytest

import strata

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
BIN = os.path.join(ROOT, os.environ.get("STRATA_BIN", "bin"))


class Server:
    """A stratad on a free loopback port in a temp dir; `extra` stratad options come last
    (a repeated option overrides the default one)."""

    def __init__(self, token=None, extra=()):
        self.dir = tempfile.mkdtemp(prefix="strata-py-srv.")
        ready = os.path.join(self.dir, "ready")
        args = [os.path.join(BIN, "stratad"), "--data-dir", os.path.join(self.dir, "data"),
                "--listen", "127.0.0.1:0", "--admin", "off", "--ready-file", ready]
        if token:
            with open(os.path.join(self.dir, "token"), "w") as f:
                f.write(token + "\n")
            args += ["--auth-token-file", os.path.join(self.dir, "token")]
        args += list(extra)
        self.log = open(os.path.join(self.dir, "stratad.log"), "w")
        self.proc = subprocess.Popen(args, stderr=self.log)
        for _ in range(400):
            if os.path.exists(ready) and os.path.getsize(ready):
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.025)
        else:
            self.stop()
            raise RuntimeError("stratad did not start")
        if self.proc.poll() is not None:
            raise RuntimeError(f"stratad exited: {open(self.log.name).read()}")
        with open(ready) as f:
            self.addr = f.read().split()[0]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        subprocess.call(["rm", "-rf", self.dir])


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(params=["embedded", "server"])
def client(request, tmp_path):
    if request.param == "embedded":
        c = strata.open(str(tmp_path / "data"))
    else:
        c = strata.connect(request.getfixturevalue("server").addr)
    yield c
    c.close()


@pytest.fixture
def tname():
    """A table name no other test uses (the server is shared by the session)."""
    return "t_" + uuid.uuid4().hex[:12]
