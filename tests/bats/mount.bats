#!/usr/bin/env bats
# mount.bats - the ways a store gets mounted and unmounted: the mount helper
# behind "mount -t fuse.dsfs" and fstab, relative paths, SIGTERM, and the
# FUSE options that pass through.

load helpers

setup()
{
	setup_store
}

teardown()
{
	teardown_store
}

# Waits until $MNT is a mount point (the helper returns once dsfs has
# detached, which is after the mount is ready; this only guards the test).
wait_mounted()
{
	local i
	for i in $(seq 50); do
		mountpoint -q "$MNT" && return 0
		sleep 0.1
	done
	fail "$MNT did not appear as a mount point"
}

@test "the mount helper mounts with dsfs options and FUSE options" {
	[ -x "${DSFS_MOUNT_HELPER:-}" ] ||
		fail "DSFS_MOUNT_HELPER is not set to the built mount.fuse.dsfs"
	run tmo env DSFS="$DSFS" "$DSFS_MOUNT_HELPER" "$STORE" "$MNT" \
		-o rw,dev,suid,allow_other,runtime_size=1M
	[ "$status" -eq 0 ] || fail "mount.fuse.dsfs: $output"
	wait_mounted
	awk -v m="$MNT" '$2 == m { print $3 }' /proc/self/mounts | grep -qx fuse.dsfs
	grep -F " $MNT " /proc/self/mounts | grep -q allow_other ||
		grep -F " $MNT " /proc/self/mounts | grep -q 'user_id='
	# runtime_size=1M reached dsfs: df on runtime/ reports 256 blocks of 4K.
	[ "$(stat -f -c '%b %S' "$MNT/runtime")" = "256 4096" ]
	echo '{"via": "helper"}' >"$MNT/kv/x"
	assert_content "$MNT/kv/x" $'{"via": "helper"}\n'
}

@test "mount -t fuse.dsfs works with the helper installed in /sbin" {
	[ "$(id -u)" -eq 0 ] || fail "this test needs root to install the helper in /sbin"
	if [ -e /sbin/mount.fuse.dsfs ] && ! grep -q DSFS= /sbin/mount.fuse.dsfs; then
		fail "/sbin/mount.fuse.dsfs exists and is not dsfs's"
	fi
	local saved=
	if [ -e /sbin/mount.fuse.dsfs ]; then
		saved=$T/saved-helper
		cp -p /sbin/mount.fuse.dsfs "$saved"
	fi
	install -m 0755 "$DSFS_MOUNT_HELPER" /sbin/mount.fuse.dsfs
	# mount(8) resets PATH; DSFS names the program under test.
	run tmo env DSFS="$DSFS" mount -t fuse.dsfs -o runtime_size=2M "$STORE" "$MNT"
	if [ -n "$saved" ]; then cp -p "$saved" /sbin/mount.fuse.dsfs; else rm -f /sbin/mount.fuse.dsfs; fi
	[ "$status" -eq 0 ] || fail "mount -t fuse.dsfs: $output"
	wait_mounted
	[ "$(stat -f -c '%b' "$MNT/kv")" = 512 ]
	echo 1 >"$MNT/kv/n"
	tmo umount "$MNT"
	! is_mounted "$MNT"
}

@test "a relative store and mount point work, and SIGTERM unmounts cleanly" {
	cd "$T"
	run tmo "$DSFS" store mnt
	[ "$status" -eq 0 ] || fail "dsfs: $output"
	wait_mounted
	echo '"rel"' >"$MNT/kv/r"
	local pid
	# Started with relative paths: find the daemon by the lock it holds.
	pid=$(fuser "$STORE/lock" 2>/dev/null | tr -d ' ')
	[ -n "$pid" ] || fail "no daemon holds $STORE/lock"
	kill -TERM $pid
	local i
	for i in $(seq 100); do
		is_mounted "$MNT" || break
		sleep 0.1
	done
	! is_mounted "$MNT" || fail "the mount is still there after SIGTERM"
	# The mount goes before the daemon has finished closing its store:
	# wait for it to exit, as a service manager would.
	for i in $(seq 100); do
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	! kill -0 $pid 2>/dev/null || fail "dsfs $pid still runs 10 s after SIGTERM"
	# The socket and lock are free again: a new mount works.
	mount_dsfs
	assert_content "$MNT/kv/r" $'"rel"\n'
}

@test "a second mount of the same store is refused" {
	mount_dsfs
	mkdir "$T/mnt2"
	run tmo "$DSFS" "$STORE" "$T/mnt2"
	[ "$status" -ne 0 ]
	[[ "$output" == *"in use"* ]] || fail "unexpected message: $output"
	! is_mounted "$T/mnt2"
}

@test "-f stays in the foreground and logs to stderr" {
	"$DSFS" -f "$STORE" "$MNT" 2>"$T/log" &
	local pid=$!
	wait_mounted
	run pyop create "$MNT/factory/kv/x"
	[ "$output" = EROFS ]
	grep -q 'factory/kv/x' "$T/log" || fail "no log line: $(cat "$T/log")"
	kill -0 $pid
	tmo fusermount3 -u "$MNT"
	wait $pid
}
