#!/usr/bin/env bats
# durability.bats - what survives: a value whose close returned survives a
# kill -9 of the daemon and a remount; nothing half-written shows after a
# restart; the ephemeral layer does not survive; a damaged or foreign
# runtime database is refused at mount and left untouched.

load helpers

setup()
{
	setup_store
}

teardown()
{
	teardown_store
}

# crash_and_remount: kill -9 the daemon, clear the dead mount, mount
# again.
crash_and_remount()
{
	kill_daemon || return 1
	is_mounted "$MNT" || fail "the dead mount vanished by itself?" || return 1
	unmount_dsfs || fail "cannot clear the dead mount $MNT" || return 1
	mount_dsfs
}

@test "a closed value survives kill -9 of the daemon" {
	mount_dsfs
	printf '{"volume": 7}\n' >"$T/v"
	cp "$T/v" "$MNT/kv/settings"
	crash_and_remount
	tmo cmp "$T/v" "$MNT/kv/settings"
}

@test "many values, directories, overwrites and removals survive kill -9" {
	mount_dsfs
	local i
	mkdir -p "$MNT/kv/a/b"
	for i in $(seq 50); do
		echo "[$i]" >"$MNT/kv/a/b/v$i"
	done
	echo '"first"' >"$MNT/kv/over"
	echo '"second"' >"$MNT/kv/over"
	echo 1 >"$MNT/kv/gone"
	rm "$MNT/kv/gone"
	mkdir "$MNT/kv/gonedir"
	rmdir "$MNT/kv/gonedir"
	echo '"moved"' >"$MNT/kv/from"
	mv "$MNT/kv/from" "$MNT/kv/to"
	crash_and_remount
	for i in $(seq 50); do
		assert_content "$MNT/kv/a/b/v$i" "[$i]"$'\n'
	done
	[ "$(ls "$MNT/kv/a/b" | wc -l)" = 50 ]
	assert_content "$MNT/kv/over" $'"second"\n'
	[ "$(ls1 "$MNT/kv")" = "$(printf '%s\n' a over to)" ]
	assert_content "$MNT/kv/to" $'"moved"\n'
}

@test "values survive kill -9 after sync and after fsync" {
	mount_dsfs
	echo '"synced"' >"$MNT/kv/s"
	sync
	run tmo "$PYTHON" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"\"fsynced\"")
os.fsync(fd)
os.close(fd)
' "$MNT/kv/f"
	[ "$status" -eq 0 ]
	tmo sync -f "$MNT/kv/s"
	crash_and_remount
	assert_content "$MNT/kv/s" $'"synced"\n'
	assert_content "$MNT/kv/f" '"fsynced"'
}

@test "a value still open for writing at the crash is not half there: the old value stays" {
	mount_dsfs
	echo '{"v": "old"}' >"$MNT/kv/x"
	# The writer writes a new value and is stopped before closing.
	"$PYTHON" -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"{\"v\": \"new, never closed\"}")
open(sys.argv[2], "w").close()
time.sleep(120)
' "$MNT/kv/x" "$T/written" 3>&- 4>&- &
	local writer=$! tries=100
	until [ -e "$T/written" ]; do
		tries=$((tries - 1))
		[ $tries -gt 0 ] || fail "the writer did not write"
		sleep 0.1
	done
	kill_daemon
	kill -9 "$writer" 2>/dev/null || true
	wait "$writer" 2>/dev/null || true
	unmount_dsfs
	mount_dsfs
	assert_content "$MNT/kv/x" $'{"v": "old"}\n'
}

@test "the ephemeral layer is lost at a crash; runtime is not" {
	mount_dsfs
	echo '"r"' >"$MNT/kv/k"
	echo '"e"' >"$MNT/ephemeral/kv/k"
	echo '"e"' >"$MNT/ephemeral/kv/only"
	assert_content "$MNT/kv/k" $'"e"\n'
	crash_and_remount
	assert_content "$MNT/kv/k" $'"r"\n'
	[ ! -e "$MNT/kv/only" ]
	[ -z "$(ls -A "$MNT/ephemeral/kv")" ]
}

@test "values survive repeated unmount and remount" {
	mount_dsfs
	local i
	for i in 1 2 3; do
		echo "$i" >"$MNT/kv/k$i"
		remount_dsfs
	done
	for i in 1 2 3; do
		assert_content "$MNT/kv/k$i" "$i"$'\n'
	done
}

@test "after kill -9 the store can be mounted again (its lock died with the daemon)" {
	mount_dsfs
	echo 1 >"$MNT/kv/a"
	kill_daemon
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
	mount_dsfs
	assert_content "$MNT/kv/a" $'1\n'
}

@test "a damaged runtime.db is refused at mount and left byte for byte untouched" {
	mkdir -m 0700 "$STORE"
	head -c 65536 /dev/urandom >"$STORE/runtime.db"
	chmod 600 "$STORE/runtime.db"
	cp -p "$STORE/runtime.db" "$T/orig.db"
	run tmo "$DSFS" "$STORE" "$MNT" 3>&- 4>&-
	if mountpoint -q "$MNT"; then
		fail "a damaged runtime.db was mounted"
	fi
	[ "$status" -ne 0 ]
	[ -n "$output" ] || fail "no message on stderr"
	[[ "$output" == *runtime.db* ]] || fail "the message does not name runtime.db: $output"
	tmo cmp "$T/orig.db" "$STORE/runtime.db"
	[ "$(stat -c %Y "$STORE/runtime.db")" = "$(stat -c %Y "$T/orig.db")" ]
}

@test "a foreign SQLite database as runtime.db is refused and left untouched" {
	mkdir -m 0700 "$STORE"
	"$PYTHON" -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("create table customers (id integer primary key, name text)")
c.execute("insert into customers (name) values (?)", ("alice",))
c.commit()
c.close()
' "$STORE/runtime.db"
	cp -p "$STORE/runtime.db" "$T/orig.db"
	run tmo "$DSFS" "$STORE" "$MNT" 3>&- 4>&-
	if mountpoint -q "$MNT"; then
		fail "a foreign runtime.db was mounted"
	fi
	[ "$status" -ne 0 ]
	[[ "$output" == *runtime.db* ]] || fail "the message does not name runtime.db: $output"
	tmo cmp "$T/orig.db" "$STORE/runtime.db"
	[ "$(stat -c %Y "$STORE/runtime.db")" = "$(stat -c %Y "$T/orig.db")" ]
}

@test "a text file as runtime.db is refused and left untouched" {
	mkdir -m 0700 "$STORE"
	printf 'this is not a database\n' >"$STORE/runtime.db"
	cp -p "$STORE/runtime.db" "$T/orig.db"
	run tmo "$DSFS" "$STORE" "$MNT" 3>&- 4>&-
	if mountpoint -q "$MNT"; then fail "a text file was mounted as runtime.db"; fi
	[ "$status" -ne 0 ]
	[ -n "$output" ]
	tmo cmp "$T/orig.db" "$STORE/runtime.db"
}
