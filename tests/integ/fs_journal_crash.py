#!/usr/bin/env python3
"""Crash model for the stratafs SSD journal.

  write MOUNT STATE --seed S   random writes (overlapping, unaligned, sparse, some long
                               sequential runs), truncates, renames (the file moved away and
                               back), hard links made and removed, unlink + recreate, and
                               fsyncs over a few files until the mount dies (stratafs killed)
                               or --ops run out; after every completed fsync of a file, its
                               contents then are the file's acknowledged state. STATE (outside
                               the mount) gets, per file, that state, the ranges written or
                               truncated after it, and the operation in flight.
  check DIR STATE              every acknowledged byte not written again later is present
                               and correct in DIR (the remounted tree or the backing dir);
                               a file's hard link, if there, is the same inode.
"""
import pickle
import os
import random
import sys

FILES = ["f0", "f1", "f2", "sub/f3"]
CUT = 1 << 62  # a range of this length: everything from off on (a truncate)


def pwrite(fd, m, data, off):
    """pwrite mirrored on the model m; a write failed by a fault point (EIO) changed
    nothing, a short one only its first bytes. 1 when it failed with EIO or was short."""
    try:
        n = os.pwrite(fd, data, off)
    except OSError as e:
        if e.errno != 5:
            raise
        return 1
    if len(m) < off + n:
        m.extend(bytes(off + n - len(m)))
    m[off:off + n] = data[:n]
    return int(n < len(data))  # the kernel's second request of a write failed


def op_meta(rnd, mount, n, fds, model, acked, since, moved, linked, save):
    """One truncate, rename, link or unlink+recreate of file n (each in flight when the
    mount may die: the state says what might have happened)."""
    p = os.path.join(mount, n)
    k = rnd.random()
    if k < 0.4:
        size = rnd.choice([0, 1, 4095, 100000, 700000, 1 << 20])
        since[n].append([size, CUT])  # from there on the file may now be anything
        save()
        try:
            os.ftruncate(fds[n], size)
            del model[n][size:]
            model[n].extend(bytes(size - len(model[n])))
        except OSError as e:
            if e.errno != 5:
                raise
            # EIO from the journal's sync: the truncate may be in the journal anyway
            model[n][:] = os.pread(fds[n], 1 << 24, 0)
    elif k < 0.7:  # away and back: journaled data follows the inode
        away = p + ".moved"
        moved[n] = n + ".moved"
        save()
        os.rename(p, away)
        os.rename(away, p)
        del moved[n]
        save()
    elif k < 0.9:  # a second name, or the second name removed (into the trash)
        if n in linked:
            linked.discard(n)
            save()
            os.unlink(p + ".l")
        else:
            os.link(p, p + ".l")
            linked.add(n)
            save()
    else:  # unlink (into the trash) and a new file of that name
        since[n] = [[0, CUT]]
        acked[n] = b""
        save()
        os.close(fds.pop(n))
        if n in linked:
            os.unlink(p + ".l")
            linked.discard(n)
        os.unlink(p)
        fds[n] = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        model[n] = bytearray()
        since[n] = []
        save()


def write(mount, state, seed, ops):
    rnd = random.Random(seed)
    model = {n: bytearray() for n in FILES}
    acked = {n: b"" for n in FILES}
    since = {n: [] for n in FILES}
    fds = {}
    moved = {}      # name -> where it is while a rename is in flight
    linked = set()  # names with a second hard link (name + ".l")
    eio = {"write": 0, "fsync": 0}

    def save():
        # only stratafs is killed, never this process: no fsync needed
        with open(state + ".tmp", "wb") as f:
            st = {n: {"acked": acked[n], "since": since[n], "moved": moved.get(n),
                      "linked": n in linked} for n in FILES}
            st["_eio"] = eio  # writes and fsyncs failed by a fault point
            pickle.dump(st, f)
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
                eio["write"] += pwrite(fds[n], model[n], data, off)
            elif k < 0.78:
                op_meta(rnd, mount, n, fds, model, acked, since, moved, linked, save)
            elif k < 0.82:
                # a sequential run (above the bypass size in the tests)
                off = rnd.randrange(1 << 20)
                for i in range(rnd.randrange(2, 12)):
                    data = rnd.randbytes(128 << 10)
                    o = off + i * len(data)
                    since[n].append([o, len(data)])
                    eio["write"] += pwrite(fds[n], model[n], data, o)
            else:
                snap = bytes(model[n])
                try:
                    os.fsync(fds[n])
                except OSError as e:
                    if e.errno != 5:  # EIO from a fault point: not acknowledged
                        raise
                    eio["fsync"] += 1
                    save()
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
        if n.startswith("_"):
            continue
        acked = s["acked"]
        p = os.path.join(root, n)
        if not os.path.exists(p) and s["moved"]:
            p = os.path.join(root, s["moved"])  # killed between the two renames
        try:
            with open(p, "rb") as f:
                got = f.read()
        except FileNotFoundError:
            got = b""
        if (s["linked"] and os.path.exists(p) and os.path.exists(p + ".l") and
                os.stat(p).st_ino != os.stat(p + ".l").st_ino):
            print("%s: its hard link is another file" % n)
            bad += 1
        need = min([len(acked)] + [off for off, ln in s["since"] if ln == CUT])
        if len(got) < need:
            print("%s: size %d < acknowledged %d" % (n, len(got), need))
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
    if sys.argv[1] == "eio":  # eio STATE write|fsync: how many failed with EIO so far
        with open(sys.argv[2], "rb") as f:
            print(pickle.load(f)["_eio"][sys.argv[3]])
        return 0
    if sys.argv[1] == "write":
        seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 1
        ops = int(sys.argv[sys.argv.index("--ops") + 1]) if "--ops" in sys.argv else 1000000
        return write(sys.argv[2], sys.argv[3], seed, ops)
    return check(sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    sys.exit(main())
