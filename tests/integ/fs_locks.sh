#!/usr/bin/env bash
# fcntl and flock locks reach the backing file: with two stratafs mounts of one backing tree
# (the second through a bind mount of it, as a second node would mount the shared tree), a
# lock taken through one mount blocks a conflicting lock through the other and on the
# backing tree directly; a waiting lock (F_SETLKW, blocking flock) is granted when the
# holder lets go, and a waiter can be interrupted; closing the file releases its locks (the
# last descriptor of the open file: the locks are open-file-description locks).
. "$(dirname "$0")/fs_common.bash"

B2="$T/backing2"
M2="$T/mnt2"
mkdir -p "$B2" "$M2"
mount --bind "$B" "$B2" || { echo "skip: bind mount not possible here"; exit 77; }
FS2_PID=
cleanup2() {
	if [ -n "$FS2_PID" ]; then
		fusermount3 -u "$M2" 2>/dev/null || umount -l "$M2" 2>/dev/null
		kill "$FS2_PID" 2>/dev/null
		wait "$FS2_PID" 2>/dev/null
	fi
	mountpoint -q "$M2" && umount -l "$M2"
	umount -l "$B2" 2>/dev/null
}
trap 'rc=$?; cleanup2; (exit $rc); fs_cleanup' EXIT

fs_mount
"$BIN/stratafs" "$B2" "$M2" -f 2>>"$T/stratafs2.log" &
FS2_PID=$!
for _ in $(seq 1 100); do mountpoint -q "$M2" && break; sleep 0.1; done
mountpoint -q "$M2" || fail "second mount did not come up: $(cat "$T/stratafs2.log")"
echo data >"$M/f"

# lockpy HOLDER_PATH OTHER_PATH KIND: holder takes an exclusive lock through one path, a
# second process tries through the other; prints what the second one saw.
/usr/bin/python3 -u - "$M/f" "$M2/f" "$B/f" <<'EOF' >"$T/locks.out" 2>&1 || fail "lock checks: $(cat "$T/locks.out")"
import errno, fcntl, os, signal, struct, sys, time
m1, m2, native = sys.argv[1:4]

def child(fn):
    """Runs fn in a child process; returns its exit code (0 = the expectation held)."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(0 if fn() else 1)
        except Exception as e:
            print("child:", repr(e), flush=True)
            os._exit(2)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

def refused(path, kind):
    fd = os.open(path, os.O_RDWR)
    try:
        if kind == "fcntl":
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError as e:
        return e.errno in (errno.EAGAIN, errno.EACCES)
    finally:
        os.close(fd)

def getlk(path):
    fd = os.open(path, os.O_RDWR)
    try:
        req = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0)
        res = fcntl.fcntl(fd, fcntl.F_GETLK, req)
        return struct.unpack("hhqqi", res)[0]
    finally:
        os.close(fd)

for kind in ("fcntl", "flock"):
    fd = os.open(m1, os.O_RDWR)
    if kind == "fcntl":
        fcntl.lockf(fd, fcntl.LOCK_EX)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX)
    assert child(lambda: refused(m2, kind)) == 0, kind + ": the other mount got the lock"
    assert child(lambda: refused(native, kind)) == 0, kind + ": the backing file got the lock"
    if kind == "fcntl":
        assert child(lambda: getlk(m2) == fcntl.F_WRLCK) == 0, "F_GETLK through the other mount"
    # a waiter through the other mount gets the lock once the holder closes its file
    t0 = time.time()
    pid = os.fork()
    if pid == 0:
        os.close(fd)  # the lock belongs to the open file (OFD): drop our copy of it
        wfd = os.open(m2, os.O_RDWR)
        if kind == "fcntl":
            fcntl.lockf(wfd, fcntl.LOCK_EX)
        else:
            fcntl.flock(wfd, fcntl.LOCK_EX)
        os._exit(0 if time.time() - t0 >= 0.4 else 3)
    time.sleep(0.5)
    os.close(fd)  # releases
    rc = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    assert rc == 0, "%s: waiter rc %d" % (kind, rc)
    assert child(lambda: not refused(m2, kind)) == 0, kind + ": lock still held after close"
    print(kind, "ok", flush=True)

# a waiter is interruptible (SIGALRM -> EINTR) and the daemon stays healthy
fd = os.open(m1, os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
class Alarm(Exception):
    pass
def interrupted():
    # a handler that raises: Python would otherwise retry the call after EINTR
    def ring(*a):
        raise Alarm()
    signal.signal(signal.SIGALRM, ring)
    wfd = os.open(m2, os.O_RDWR)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        fcntl.lockf(wfd, fcntl.LOCK_EX)
        return False
    except Alarm:
        return True
assert child(interrupted) == 0, "blocked F_SETLKW was not interrupted"
# shared locks coexist across mounts
os.close(fd)
fd = os.open(m1, os.O_RDONLY)
fcntl.lockf(fd, fcntl.LOCK_SH)
def shared():
    f2 = os.open(m2, os.O_RDONLY)
    fcntl.lockf(f2, fcntl.LOCK_SH | fcntl.LOCK_NB)
    return True
assert child(shared) == 0, "shared locks conflict"
os.close(fd)
print("interrupt ok", flush=True)
EOF
grep -q "interrupt ok" "$T/locks.out" || fail "lock checks: $(cat "$T/locks.out")"

note "on one mount, a waiter gets the lock when the holder's open file is released (the"
note "kernel's passthrough reference to the inode's backing file must not keep it)"
for i in 1 2 3; do
	timeout 20 flock "$M/f" sleep 0.3 & h=$!
	sleep 0.1
	timeout 10 flock "$M/f" true || fail "same-mount flock waiter never got the lock (round $i)"
	wait $h || fail "holder failed"
done
cat "$T/locks.out"
fs_umount
echo "ok"
