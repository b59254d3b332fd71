"""Preload jobs: progress while a job runs, cancel of a running job, wait(progress=True) drawing
a tqdm bar, format= for a file whose name says nothing. The input is a FIFO fed by the test,
so a job is held in its read phase for as long as the test needs (a job reading a regular
file may end before a cancel lands). The store reads its input 1 MiB at a time: the first part
written is larger than that, so the job parses rows and then waits for the rest."""
import os
import threading
import time

import pytest

import strata

ROW = "r{i},2026-01-01T00:00:00Z,{i}\n"


class Feeder:
    """Writes a CSV into a FIFO: the header and `first` rows now, the rest on release()."""

    def __init__(self, path, first, rest):
        os.mkfifo(path)
        self.path, self.first, self.rest = path, first, rest
        self.go = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        try:
            with open(self.path, "w") as f:  # blocks until the job opens the FIFO
                f.write("entity,ts,x\n" + "".join(ROW.format(i=i) for i in range(self.first)))
                f.flush()
                self.go.wait(60)
                f.write("".join(ROW.format(i=i) for i in range(self.first,
                                                               self.first + self.rest)))
        except BrokenPipeError:
            pass  # a cancelled job closed its input

    def release(self):
        self.go.set()
        self.th.join(0.5)
        if self.th.is_alive():  # no job opened the FIFO: unblock the writer's open
            os.close(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK))  # it then gets EPIPE
            self.th.join(60)


def _until(job, pred, what):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        p = job.progress()
        if pred(p):
            return p
        time.sleep(0.01)
    raise AssertionError(f"job never {what}: {p}")


def test_progress_and_cancel_of_a_running_job(client, tname, tmp_path):
    client.create_table(tname, {"x": "i64"})
    feed = Feeder(str(tmp_path / "in.csv"), 40000, 10000)
    try:
        job = client.preload(tname, feed.path, format="csv", wait=False)
        assert isinstance(job, strata.Job)
        p = _until(job, lambda p: p["rows"] >= 20000, "read the first rows")
        assert p["state"] == "running" and p["bytes_done"] > 0 and job.state == "running"
        job.cancel()
    finally:
        feed.release()
    with pytest.raises(strata.Cancelled):
        job.wait(timeout=60)
    assert job.progress()["state"] == "cancelled"
    assert client.get(tname, ["r1", "r5000"], ["x"]).to_dict() == {"x": [None, None]}


def test_wait_with_progress_bar(client, tname, tmp_path, capsys):
    pytest.importorskip("tqdm")
    client.create_table(tname, {"x": "i64"})
    feed = Feeder(str(tmp_path / "in.csv"), 40000, 3000)
    job = client.preload(tname, feed.path, format="csv", wait=False)
    _until(job, lambda p: p["rows"] >= 20000, "read the first rows")
    feed.release()
    info = job.wait(progress=True, timeout=60)
    assert info["state"] == "done" and info["rows"] == 43000
    err = capsys.readouterr().err
    assert f"preload job {job.id}" in err and "rows=43000" in err, err
    assert client.get(tname, "r42999", ["x"]).to_dict() == {"x": [42999]}


def test_format_argument(client, tname, tmp_path):
    """format= reads a file whose name has no known extension; without it the name decides."""
    client.create_table(tname, {"x": "i64"})
    p = tmp_path / "rows.data"
    p.write_text('{"entity": "j1", "ts": "2026-01-01T00:00:00Z", "x": 11}\n')
    assert client.preload(tname, str(p)).progress()["rows"] == 0  # a CSV header line
    assert client.get(tname, "j1", ["x"]).to_dict() == {"x": [None]}
    assert client.preload(tname, str(p), format="jsonl").progress()["rows"] == 1
    assert client.get(tname, "j1", ["x"]).to_dict() == {"x": [11]}
    with pytest.raises(strata.InvalidArgument):
        client.preload(tname, str(p), format="xml")
