# Sourced by bench-fs.sh (section "slow"): builds the slow capacity tier for the SSD-journal
# bench and takes it down again.
#
# The tier is an ext4 on a loop device whose backing file sits on the fast disk, throttled
# with the cgroup v1 blkio controller (blkio.throttle.write_bps_device and
# write_iops_device) of the ROOT blkio cgroup. The rule is per device, so it slows only this
# loop device, and because it sits in the root cgroup it charges every write to the device
# whoever submits it: the kernel's flusher threads and `sync` included (a rule in a child
# cgroup would charge only the I/O its own tasks submit, and cgroup v1 attributes no
# buffered writeback to a child). Other ways, and why not:
#   dm-delay / dm-* : no device-mapper in this kernel (not in /proc/devices, no modules,
#                     no modprobe); dmsetup then fails with "/dev/mapper/control: open
#                     failed: No such device" / "Failure to communicate with kernel
#                     device-mapper driver"
#   cgroup v2 io.max: /sys/fs/cgroup/unified/cgroup.controllers lists only hugetlb (the
#                     io controller is bound to the v1 blkio hierarchy)
#   nbd             : CONFIG_BLK_DEV_NBD is not set (no /dev/nbd*; modprobe: command
#                     not found)
#   a FUSE-level delay would slow the very thing being measured.
#
# slow_up DIR BPS IOPS: sets SLOW_MNT (the tier's mount point), SLOW_DEV, SLOW_MAJMIN;
# returns non-zero with SLOW_WHY saying what failed. slow_down: undoes what slow_up did
# (unmount, detach, remove the rules, delete the image), whatever state it got to.
SLOW_BLKIO=${SLOW_BLKIO:-/sys/fs/cgroup/blkio}
SLOW_MNT= SLOW_DEV= SLOW_MAJMIN= SLOW_IMG= SLOW_WHY=

slow_try() { # WHAT CMD...: runs CMD; on failure sets SLOW_WHY to WHAT and the error
	local out
	if ! out=$("${@:2}" 2>&1); then
		SLOW_WHY="$1: $(echo "$out" | tr '\n' ' ')"
		return 1
	fi
	printf '%s' "$out"
}

slow_up() { # DIR BPS IOPS
	local dir=$1 bps=$2 iops=$3
	SLOW_IMG="$dir/slowtier.img"
	SLOW_MNT="$dir/slowtier"
	[ -f "$SLOW_BLKIO/blkio.throttle.write_bps_device" ] || {
		SLOW_WHY="no cgroup v1 blkio throttle at $SLOW_BLKIO (blkio.throttle.write_bps_device missing)"
		return 1
	}
	slow_try "truncate $SLOW_IMG" truncate -s 4G "$SLOW_IMG" >/dev/null || return 1
	SLOW_DEV=$(slow_try "losetup -f --show $SLOW_IMG" losetup -f --show "$SLOW_IMG") || return 1
	SLOW_MAJMIN=$(slow_try "lsblk $SLOW_DEV" lsblk -dno MAJ:MIN "$SLOW_DEV") || return 1
	SLOW_MAJMIN=${SLOW_MAJMIN// /}
	slow_try "mkfs.ext4 $SLOW_DEV" mkfs.ext4 -q -F -E nodiscard "$SLOW_DEV" >/dev/null || return 1
	mkdir -p "$SLOW_MNT"
	slow_try "mount $SLOW_DEV" mount "$SLOW_DEV" "$SLOW_MNT" >/dev/null || return 1
	slow_try "write $SLOW_MAJMIN $bps to blkio.throttle.write_bps_device" \
		sh -c "echo '$SLOW_MAJMIN $bps' >'$SLOW_BLKIO/blkio.throttle.write_bps_device'" || return 1
	slow_try "write $SLOW_MAJMIN $iops to blkio.throttle.write_iops_device" \
		sh -c "echo '$SLOW_MAJMIN $iops' >'$SLOW_BLKIO/blkio.throttle.write_iops_device'" || return 1
	grep -q "^$SLOW_MAJMIN $bps\$" "$SLOW_BLKIO/blkio.throttle.write_bps_device" || {
		SLOW_WHY="the blkio rule for $SLOW_MAJMIN did not stick"
		return 1
	}
	return 0
}

slow_down() {
	if [ -n "$SLOW_MAJMIN" ]; then
		echo "$SLOW_MAJMIN 0" >"$SLOW_BLKIO/blkio.throttle.write_bps_device" 2>/dev/null
		echo "$SLOW_MAJMIN 0" >"$SLOW_BLKIO/blkio.throttle.write_iops_device" 2>/dev/null
	fi
	if [ -n "$SLOW_MNT" ] && mountpoint -q "$SLOW_MNT"; then
		umount "$SLOW_MNT" 2>/dev/null || umount -l "$SLOW_MNT"
	fi
	[ -n "$SLOW_DEV" ] && losetup -d "$SLOW_DEV" 2>/dev/null
	[ -n "$SLOW_IMG" ] && rm -f "$SLOW_IMG"
	SLOW_MAJMIN= SLOW_DEV=
}
