#!/usr/bin/env bats
# small.bats - a store on a small partition (1, 2 and 4 MiB, a tmpfs of
# that size mounted as the store directory): values fill at least 70% of
# it before ENOSPC; at ENOSPC nothing is damaged; removing entries always
# works on the full store; writes resume once space is freed, without a
# remount; df and dsfsctl usage say what still fits.  The WAL's limit and
# the space reserve are sized from the partition (dsfs(8), "Disk space").
#
# These tests mount tmpfs instances and must run as root; they fail (never
# skip) otherwise.

load helpers

setup()
{
	setup_store
	SMALL=
}

teardown()
{
	teardown_store_small
}

# Unmount dsfs before the partition under it, then remove $T.
teardown_store_small()
{
	unmount_dsfs || true
	if [ -n "$SMALL" ] && is_mounted "$SMALL"; then
		umount "$SMALL" || umount -l "$SMALL"
	fi
	teardown_store
}

# figure TEXT: a measured figure, shown in the TAP output.
figure()
{
	echo "# $*" >&3
}

# partition SIZE: a tmpfs of SIZE as the store directory.
partition()
{
	[ "$(id -u)" -eq 0 ] ||
		fail "FATAL: this test mounts a tmpfs and must run as root (it is not skipped)" ||
		return 1
	mkdir -p "$STORE"
	mount -t tmpfs -o size="$1",mode=0700 tmpfs "$STORE" ||
		fail "FATAL: cannot mount a $1 tmpfs on $STORE" || return 1
	SMALL=$STORE
}

# The writer and checker: `fill MNT FIRST TAG` writes 4000-byte JSON values
# kv/TAG-N from N=FIRST until the first error and prints "N ERRNO BYTES"
# (BYTES: value bytes acknowledged); `verify MNT TAG N...` checks that the
# values named exist byte for byte.
PY_SMALL='
import errno, os, sys
def value(tag, i):
    head = "{\"tag\": \"%s\", \"i\": %d, \"pad\": \"" % (tag, i)
    return (head + "x" * (4000 - len(head) - 2) + "\"}").encode()
cmd, mnt, tag = sys.argv[1], sys.argv[2], sys.argv[3]
if cmd == "fill":
    i, n = int(sys.argv[4]), 0
    while True:
        p = os.path.join(mnt, "kv", "%s-%d" % (tag, i))
        data = value(tag, i)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as e:
            print(i, errno.errorcode.get(e.errno, e.errno), n)
            sys.exit(0)
        n += len(data)
        i += 1
        if i > 100000:
            sys.exit("never full")
elif cmd == "verify":
    for a in sys.argv[4:]:
        i = int(a)
        got = open(os.path.join(mnt, "kv", "%s-%d" % (tag, i)), "rb").read()
        if got != value(tag, i):
            sys.exit("%s-%d: damaged (%d bytes)" % (tag, i, len(got)))
'

# df_avail: bytes df says are available on the mount's kv/.
df_avail()
{
	local blocks
	blocks=$(tmo stat -f -c '%a %S' "$MNT/kv") || return 1
	echo $((${blocks% *} * ${blocks#* }))
}

# usage_free: what dsfsctl usage says is left of the runtime layer.
usage_free()
{
	local out
	out=$(tmo "$DSFSCTL" usage "$STORE" 3>&- 4>&-) || return 1
	awk '$1 == "runtime" { print $3 - $2 }' <<<"$out"
}

# small_cycle SIZE_MIB: the whole story on one partition.
small_cycle()
{
	local mib=$1 size=$(($1 << 20))
	partition "${mib}m"
	mount_dsfs -o runtime_size=64M

	# Before: df says most of the partition fits, and no more than it.
	local avail0
	avail0=$(df_avail)
	[ "$avail0" -ge $((size * 7 / 10)) ] ||
		fail "df says only $avail0 bytes fit on an empty $mib MiB store"
	[ "$avail0" -le "$size" ] ||
		fail "df says $avail0 bytes fit on a $mib MiB partition"

	# Fill: ENOSPC, not EIO, after at least 70% of the partition.
	run tmo "$PYTHON" -c "$PY_SMALL" fill "$MNT" a 0
	[ "$status" -eq 0 ] || fail "writer: $output"
	local n err bytes
	read -r n err bytes <<<"$output"
	[ "$err" = ENOSPC ] || fail "value $n failed with $err, not ENOSPC"
	[ "$bytes" -ge $((size * 7 / 10)) ] ||
		fail "only $bytes bytes of values ($n values) fit on $mib MiB" \
			"($((bytes * 100 / size))%)"
	figure "$mib MiB: $n values of 4000 bytes ($((bytes * 100 / size))%)" \
		"before ENOSPC; df said $avail0 bytes would fit"
	# What df said would fit did (names and rows take a little more).
	[ "$bytes" -ge $((avail0 * 9 / 10)) ] ||
		fail "df said $avail0 bytes would fit, only $bytes did"

	# df and dsfsctl usage agree that (almost) nothing more fits.
	local avail used_free
	avail=$(df_avail)
	used_free=$(usage_free)
	[ "$avail" -lt 16384 ] ||
		fail "df says $avail bytes still fit on the full store"
	[ "$used_free" -lt 16384 ] ||
		fail "dsfsctl usage says $used_free bytes still fit on the full store"

	# Nothing acknowledged is damaged; the refused value is not there.
	run tmo "$PYTHON" -c "$PY_SMALL" verify "$MNT" a $(seq 0 $((n - 1)))
	[ "$status" -eq 0 ] || fail "after ENOSPC: $output"
	[ ! -s "$MNT/kv/a-$n" ] || fail "the refused value a-$n is there"

	# Removing works on the full store, every time.
	local i
	for i in $(seq 0 2 18); do
		rm "$MNT/kv/a-$i" || fail "rm a-$i on the full store failed"
	done
	[ "$(df_avail)" -gt "$avail" ] ||
		fail "df does not show the room the removals made"

	# Writes resume without a remount, and fill the store again.
	run tmo "$PYTHON" -c "$PY_SMALL" fill "$MNT" b 0
	[ "$status" -eq 0 ] || fail "writer after rm: $output"
	local n2 err2
	read -r n2 err2 bytes <<<"$output"
	[ "$err2" = ENOSPC ] || fail "value b-$n2 failed with $err2, not ENOSPC"
	[ "$n2" -ge 5 ] || fail "only $n2 values fit after removing 10"

	# Full a second time: removing still works, and so does writing.
	for i in $(seq 1 2 19); do
		rm "$MNT/kv/a-$i" || fail "rm a-$i on the store full again failed"
	done
	run tmo "$PYTHON" -c "$PY_SMALL" fill "$MNT" c 0
	[ "$status" -eq 0 ] || fail "writer after the second rm: $output"
	local n3
	read -r n3 err bytes <<<"$output"
	[ "$n3" -ge 5 ] || fail "only $n3 values fit after the second removal"

	run tmo "$PYTHON" -c "$PY_SMALL" verify "$MNT" a $(seq 20 $((n - 1)))
	[ "$status" -eq 0 ] || fail "$output"
	run tmo "$PYTHON" -c "$PY_SMALL" verify "$MNT" b $(seq 0 $((n2 - 1)))
	[ "$status" -eq 0 ] || fail "$output"

	# The full store unmounts, checks clean and mounts again.
	unmount_dsfs
	run tmo "$DSFSCTL" check "$STORE" 3>&- 4>&-
	[ "$status" -eq 0 ] || fail "dsfsctl check of the full store: $output"
	mount_dsfs -o runtime_size=64M
	run tmo "$PYTHON" -c "$PY_SMALL" verify "$MNT" c $(seq 0 $((n3 - 1)))
	[ "$status" -eq 0 ] || fail "after remount: $output"
	rm "$MNT/kv/a-20" || fail "rm after remounting the full store failed"
}

@test "1 MiB partition: 70% fills with values, rm always works, writes resume" {
	small_cycle 1
}

@test "2 MiB partition: 70% fills with values, rm always works, writes resume" {
	small_cycle 2
}

@test "4 MiB partition: 70% fills with values, rm always works, writes resume" {
	small_cycle 4
}

@test "a partition freed by something else: the reserve is taken again and the store grows" {
	partition 2m
	head -c 600K /dev/zero >"$STORE/ballast"
	mount_dsfs -o runtime_size=64M
	run tmo "$PYTHON" -c "$PY_SMALL" fill "$MNT" a 0
	[ "$status" -eq 0 ] || fail "writer: $output"
	local n err bytes
	read -r n err bytes <<<"$output"
	[ "$err" = ENOSPC ] || fail "value $n failed with $err, not ENOSPC"
	rm "$MNT/kv/a-0" "$MNT/kv/a-1" || fail "rm on the full store failed"
	local before
	before=$(df_avail)
	rm "$STORE/ballast"
	# The reserve is taken again at most a second after a change.
	sleep 1.1
	rm "$MNT/kv/a-2" || fail "rm after freeing the ballast failed"
	[ "$(df_avail)" -gt $((before + 300000)) ] ||
		fail "df does not show the 600K freed: $before then $(df_avail)"
	run tmo "$PYTHON" -c "$PY_SMALL" fill "$MNT" b 0
	[ "$status" -eq 0 ] || fail "writer after freeing: $output"
	local n2
	read -r n2 err bytes <<<"$output"
	[ "$bytes" -ge 400000 ] ||
		fail "only $bytes bytes fit after 600K were freed under the store"
	run tmo "$PYTHON" -c "$PY_SMALL" verify "$MNT" a $(seq 3 $((n - 1)))
	[ "$status" -eq 0 ] || fail "$output"
	ls "$STORE" | grep -q reserve || fail "no reserve beside the store"
}

# page_size FILE: the page size of the SQLite file FILE (not mounted).
page_size()
{
	"$PYTHON" -c 'import sqlite3, sys
print(sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True).execute("pragma page_size").fetchone()[0])' "$1"
}

@test "page_size: 512 by default, another for a new store with -o page_size, fixed once made" {
	mount_dsfs
	echo '"v"' >"$MNT/kv/a"
	unmount_dsfs
	[ "$(page_size "$STORE/runtime.db")" = 512 ] ||
		fail "a new store has pages of $(page_size "$STORE/runtime.db") bytes"
	# An existing store keeps its page size, and its values.
	mount_dsfs -o page_size=4096
	assert_content "$MNT/kv/a" '"v"'$'\n'
	unmount_dsfs
	[ "$(page_size "$STORE/runtime.db")" = 512 ] ||
		fail "page_size=4096 changed an existing store"
	rm -rf "$STORE"
	mount_dsfs -o page_size=4096
	echo '"w"' >"$MNT/kv/b"
	assert_content "$MNT/kv/b" '"w"'$'\n'
	unmount_dsfs
	[ "$(page_size "$STORE/runtime.db")" = 4096 ] ||
		fail "page_size=4096 made pages of $(page_size "$STORE/runtime.db") bytes"
	rm -rf "$STORE"
	run tmo "$DSFS" -o page_size=1000 "$STORE" "$MNT" 3>&- 4>&-
	[ "$status" -ne 0 ] || fail "page_size=1000 was accepted"
	[[ $output == *"page_size=1000"*"power of two"* ]] ||
		fail "page_size=1000 refused without saying why: $output"
	[ ! -e "$STORE/runtime.db" ] || fail "page_size=1000 left a store behind"
}
