#!/usr/bin/env python3
"""Crash model for the stratafs SSD journal.

  write MOUNT STATE --seed S   random writes (overlapping, unaligned, sparse, some long
                               sequential runs) and fsyncs over a few files until the mount
                               dies (stratafs killed) or --ops run out; after every completed
                               fsync of a file, its contents then are the file's acknowledged
                               state. STATE (outside the mount) gets, per file, that state and
                               the ranges written after it.
  check DIR STATE              every acknowledged byte not written again later is present
                               and correct in DIR (the remounted tree or the backing dir).
"""
import pickle
import os
import random
import sys

FILES = ["f0", "f1", "f2", "sub/f3"]


def pwrite(fd, m, data, off):
    """pwrite mirrored on the model m; a write failed by a fault point (EIO) changed
    nothing, a short one only its first bytes."""
    try:
        n = os.pwrite(fd, data, off)
    except OSError as e:
        if e.errno != 5:
            raise
        return
    if len(m) < off + n:
        m.extend(bytes(off + n - len(m)))
    m[off:off + n] = data[:n]


def write(mount, state, seed, ops):
    rnd = random.Random(seed)
    model = {n: bytearray() for n in FILES}
    acked = {n: b"" for n in FILES}
    since = {n: [] for n in FILES}
    fds = {}

    def save():
        # only stratafs is killed, never this process: no fsync needed
        with open(state + ".tmp", "wb") as f:
            pickle.dump({n: {"acked": acked[n], "since": since[n]} for n in FILES}, f)
        os.replace(state + ".tmp", state)

    os.makedirs(os.path.join(mount, "sub"), exist_ok=True)
    for n in FILES:
        fds[n] = os.open(os.path.join(mount, n), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    save()  # the test waits for this before it picks its moment to kill
    try:
        for _ in range(ops):
            n = rnd.choice(FILES)
            k = rnd.random()
            if k < 0.75:
                ln = rnd.choice([1, 100, 4096, 5000, 65536, 200000])
                off = rnd.randrange(1 << 20)
                data = rnd.randbytes(ln)
                since[n].append([off, ln])  # uncertain from now until the next fsync
                pwrite(fds[n], model[n], data, off)
            elif k < 0.82:
                # a sequential run (above the bypass size in the tests)
                off = rnd.randrange(1 << 20)
                for i in range(rnd.randrange(2, 12)):
                    data = rnd.randbytes(128 << 10)
                    o = off + i * len(data)
                    since[n].append([o, len(data)])
                    pwrite(fds[n], model[n], data, o)
            else:
                snap = bytes(model[n])
                try:
                    os.fsync(fds[n])
                except OSError as e:
                    if e.errno != 5:  # EIO from a fault point: not acknowledged
                        raise
                    continue
                acked[n] = snap
                since[n] = []
                save()
    except OSError:
        pass  # the mount went away under us
    save()
    return 0


def check(root, state):
    with open(state, "rb") as f:
        st = pickle.load(f)
    bad = 0
    for n, s in st.items():
        acked = s["acked"]
        p = os.path.join(root, n)
        try:
            with open(p, "rb") as f:
                got = f.read()
        except FileNotFoundError:
            got = b""
        if len(got) < len(acked):
            print("%s: size %d < acknowledged %d" % (n, len(got), len(acked)))
            bad += 1
            continue
        free = bytearray(len(acked))
        for off, ln in s["since"]:
            lo, hi = min(off, len(acked)), min(off + ln, len(acked))
            free[lo:hi] = b"\x01" * (hi - lo)
        # compare in blocks, then find the first bad byte of a differing block
        for b in range(0, len(acked), 4096):
            a, g, fr = acked[b:b + 4096], got[b:b + 4096], free[b:b + 4096]
            if a == g:
                continue
            i = next((b + k for k in range(len(a)) if not fr[k] and a[k] != g[k]), None)
            if i is not None:
                print("%s: byte %d is %d, acknowledged %d" % (n, i, got[i], acked[i]))
                bad += 1
                break
    print("check %s: %s" % (root, "ok" if not bad else "%d bad file(s)" % bad))
    return 1 if bad else 0


def main():
    if sys.argv[1] == "write":
        seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 1
        ops = int(sys.argv[sys.argv.index("--ops") + 1]) if "--ops" in sys.argv else 1000000
        return write(sys.argv[2], sys.argv[3], seed, ops)
    return check(sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    sys.exit(main())
