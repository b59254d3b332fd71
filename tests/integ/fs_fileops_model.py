#!/usr/bin/env python3
"""Random file I/O on two trees at once: the mount under test and a plain directory (the
reference model). Every result (bytes read, sizes, errors) must be the same on both.

usage: fs_fileops_model.py MOUNT_DIR NATIVE_DIR [--ops N] [--seed S]

Several descriptors per file, opened with random flags (append, truncate, read-only...),
writes and reads at random offsets, truncation, mmap reads and writes, fsync, hard links,
renames over existing files, chmod and unlinks of files that are still open: the cases
where a passthrough file, its backing file and the page cache could disagree. stat and fstat
compare size, st_nlink (the trash keeps a link to every deleted name, which must not show)
and mode after every operation that returns them.
"""
import argparse
import errno
import mmap
import os
import random
import sys

NAMES = ["a", "b", "c", "d", "g", "h", "sub/e", "sub/f", "sub/i", "sub/j"]
FLAGS = [os.O_RDONLY, os.O_WRONLY, os.O_RDWR, os.O_RDWR | os.O_APPEND,
         os.O_WRONLY | os.O_APPEND, os.O_RDWR | os.O_TRUNC]


class Side:
    """One tree and its open descriptors (slot -> fd)."""

    def __init__(self, root):
        self.root = root
        self.fds = {}

    def path(self, name):
        return os.path.join(self.root, name)


def run(side, op, args):
    """Runs one operation on one side; returns a comparable result."""
    try:
        if op == "open":
            slot, name, flags = args
            if slot in side.fds:
                os.close(side.fds.pop(slot))
            side.fds[slot] = os.open(side.path(name), flags | os.O_CREAT, 0o644)
            return "ok"
        fd = side.fds.get(args[0]) if op not in ("link", "rename", "unlink", "stat", "chmod") else None
        if op in ("pwrite", "write", "pread", "read", "trunc", "fsync", "close", "mmapr",
                  "mmapw", "fstat") and fd is None:
            return "noslot"
        if op == "pwrite":
            return os.pwrite(fd, args[1], args[2])
        if op == "write":
            return os.write(fd, args[1])
        if op == "pread":
            return os.pread(fd, args[1], args[2])
        if op == "read":
            return os.read(fd, args[1])
        if op == "trunc":
            os.ftruncate(fd, args[1])
            return "ok"
        if op == "fsync":
            os.fsync(fd)
            return "ok"
        if op == "fstat":
            # st_nlink too: links the trash keeps for deleted names are not counted
            st = os.fstat(fd)
            return (st.st_size, st.st_nlink, oct(st.st_mode))
        if op == "close":
            os.close(side.fds.pop(args[0]))
            return "ok"
        if op in ("mmapr", "mmapw"):
            size = os.fstat(fd).st_size
            if size == 0:
                return "empty"
            writable = op == "mmapw"
            prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
            m = mmap.mmap(fd, size, mmap.MAP_SHARED, prot)
            try:
                off = args[1] % size
                if writable:
                    data = args[2][: size - off]
                    m[off:off + len(data)] = data
                    m.flush()
                    return len(data)
                return m[off:off + args[2]]
            finally:
                m.close()
        if op == "stat":
            st = os.stat(side.path(args[0]))
            return (st.st_size, st.st_nlink, oct(st.st_mode))
        if op == "chmod":
            os.chmod(side.path(args[0]), args[1])
            return "ok"
        if op == "link":
            os.link(side.path(args[0]), side.path(args[1]))
            return "ok"
        if op == "rename":
            os.rename(side.path(args[0]), side.path(args[1]))
            return "ok"
        if op == "unlink":
            os.unlink(side.path(args[0]))
            return "ok"
    except OSError as e:
        # EBADF for writes on read-only fds and the like: the same on both sides
        return "errno:%s" % errno.errorcode.get(e.errno, e.errno)
    raise AssertionError("unknown op " + op)


def random_op(rnd):
    slot = rnd.randrange(6)
    name = rnd.choice(NAMES)
    k = rnd.random()
    if k < 0.12:
        return "open", (slot, name, rnd.choice(FLAGS))
    if k < 0.32:
        n = rnd.choice([1, 7, 512, 4096, 5000, 70000])
        return "pwrite", (slot, rnd.randbytes(n), rnd.randrange(200000))
    if k < 0.40:
        return "write", (slot, rnd.randbytes(rnd.choice([3, 100, 4096, 9000])))
    if k < 0.58:
        return "pread", (slot, rnd.choice([1, 100, 4096, 65536, 300000]), rnd.randrange(220000))
    if k < 0.63:
        return "read", (slot, rnd.choice([10, 8192, 100000]))
    if k < 0.68:
        return "trunc", (slot, rnd.choice([0, 1, 4095, 4096, 100000, 250000]))
    if k < 0.72:
        return "mmapr", (slot, rnd.randrange(1 << 20), rnd.choice([1, 4096, 20000]))
    if k < 0.75:
        return "mmapw", (slot, rnd.randrange(1 << 20), rnd.randbytes(rnd.choice([1, 300, 9000])))
    if k < 0.78:
        return "fsync", (slot,)
    if k < 0.82:
        return "fstat", (slot,)
    if k < 0.86:
        return "close", (slot,)
    if k < 0.875:
        return "stat", (name,)
    if k < 0.89:
        return "chmod", (name, rnd.choice([0o600, 0o640, 0o644, 0o755, 0o700]))
    if k < 0.92:
        return "link", (name, rnd.choice(NAMES))
    if k < 0.96:
        return "rename", (name, rnd.choice(NAMES))
    return "unlink", (name,)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mount")
    ap.add_argument("native")
    ap.add_argument("--ops", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--trace", action="store_true", help="print every operation")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rnd = random.Random(seed)
    sides = [Side(a.mount), Side(a.native)]
    for s in sides:
        os.makedirs(s.path("sub"), exist_ok=True)
    for i in range(a.ops):
        op, args = random_op(rnd)
        got = [run(s, op, args) for s in sides]
        if a.trace:
            print(i, op, tuple(x if not isinstance(x, bytes) else len(x) for x in args),
                  got[1] if not isinstance(got[1], bytes) else len(got[1]))
        if got[0] != got[1]:
            show = [g if not isinstance(g, bytes) else "%d bytes %r..." % (len(g), g[:16])
                    for g in got]
            print("MISMATCH at op %d %s%r (seed %d): mount=%s native=%s"
                  % (i, op, tuple(x if not isinstance(x, bytes) else len(x) for x in args),
                     seed, show[0], show[1]))
            return 1
    for s in sides:
        for fd in s.fds.values():
            os.close(fd)
    for name in NAMES:  # final contents, read fresh
        r = []
        for s in sides:
            try:
                with open(s.path(name), "rb") as f:
                    r.append(f.read())
            except FileNotFoundError:
                r.append(None)
        if r[0] != r[1]:
            print("MISMATCH in final content of %s (seed %d)" % (name, seed))
            return 1
    print("%d ops, seed %d: mount and native agree" % (a.ops, seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
