#!/usr/bin/env bats
# imagefiles.bats - images of 64 KiB and more are files in
# STORE/runtime.db-blobs/, named by their token, instead of rows of
# runtime.db: where they live, that they go when the last name for them
# does, that what a crash leaves in runtime.db-blobs/pending/ is settled
# at the next mount, that readers keep their bytes, that dsfsctl check
# sees them, and that a disk filled by them can be emptied through the
# mount.  The SQLite runtime only: the other backends have no such files.

load helpers

setup()
{
	setup_store
	D=$T/data
	mkdir -p "$D"
	B=$STORE/runtime.db-blobs
}

teardown()
{
	teardown_store
	if [ -n "${SMALL:-}" ]; then
		umount "$SMALL" 2>/dev/null || umount -l "$SMALL" 2>/dev/null
		rmdir "$SMALL" 2>/dev/null
		SMALL=
	fi
}

# bigimg FILE SIZE: a PNG signature followed by SIZE random bytes.
bigimg()
{
	{ printf '\211PNG\r\n\032\n'; head -c "$2" /dev/urandom; } >"$1"
}

sha() { sha256sum <"$1" | cut -d' ' -f1; }

# The store on a tmpfs of 8 MiB of its own, $SMALL (teardown unmounts it).
small_store()
{
	[ "$(id -u)" -eq 0 ] || fail "FATAL: this test mounts a tmpfs and must run as root"
	SMALL=$T.small
	mkdir "$SMALL"
	mount -t tmpfs -o size=8M tmpfs "$SMALL" || fail "FATAL: cannot mount a tmpfs"
	STORE=$SMALL/store
}

# The files in runtime.db-blobs/ (not pending/), one name a line, sorted.
blob_files() { find "$B" -maxdepth 1 -type f -printf '%f\n' | sort; }
pending_files() { find "$B/pending" -type f -printf '%f\n' | sort; }

@test "a large image is one file named by its token; a small one stays in runtime.db" {
	mount_dsfs
	bigimg "$D/big" $((1024 * 1024))
	bigimg "$D/small" 1000
	tmo cp "$D/big" "$MNT/images/big"
	tmo cp "$D/small" "$MNT/images/small"
	local tb ts
	tb=$(sha "$D/big")
	ts=$(sha "$D/small")
	[ -f "$B/$tb" ] || [ -f "$B/pending/$tb" ] ||
		fail "no file for the 1 MiB image: $(ls -R "$B")"
	cmp "$D/big" "$MNT/images/big"
	cmp "$D/small" "$MNT/images/small"
	unmount_dsfs
	# Settled at close: the file in place, nothing pending, no file for
	# the small image.
	[ "$(blob_files)" = "$tb" ] || fail "blob files: $(blob_files)"
	[ -z "$(pending_files)" ] || fail "left pending: $(pending_files)"
	[ ! -e "$B/$ts" ]
	cmp "$D/big" "$B/$tb"
	# Store version 2: a dsfs that knows no image files refuses it.
	[ "$("$PYTHON" -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("PRAGMA user_version").fetchone()[0])' \
		"$STORE/runtime.db")" = 2 ] || fail "store version not 2"
	mount_dsfs
	cmp "$D/big" "$MNT/images/big"
	[ "$(xattr "$MNT/images/big" user.dsfs.token)" = "$tb" ]
	cmp "$D/big" "$MNT/images/.by-token/$tb"
	[ "$(stat -c %s "$MNT/images/big")" -eq $((1024 * 1024 + 8)) ]
}

@test "two names share one file; it goes with the last of them, at once" {
	mount_dsfs
	bigimg "$D/a" 300000
	tmo cp "$D/a" "$MNT/images/one"
	tmo cp "$D/a" "$MNT/images/two"
	local t
	t=$(sha "$D/a")
	rm "$MNT/images/one"
	cmp "$D/a" "$MNT/images/two"
	[ -f "$B/$t" ] || [ -f "$B/pending/$t" ] || fail "the shared file went with one of its names"
	rm "$MNT/images/two"
	# The removal is settled with its change: the space is free now.
	[ ! -e "$B/$t" ] || fail "still in runtime.db-blobs after the last rm"
	[ ! -e "$B/pending/$t" ] || fail "still pending after the last rm"
	unmount_dsfs
	[ -z "$(blob_files)$(pending_files)" ] || fail "left: $(blob_files) $(pending_files)"
}

@test "what a crash leaves in pending/ is settled at the next mount" {
	mount_dsfs
	local i
	for i in 1 2 3; do
		bigimg "$D/$i" 200000
		tmo cp "$D/$i" "$MNT/images/i$i"
	done
	kill_daemon
	unmount_dsfs
	# Fewer than 16 images since the mount: all still pending.
	[ "$(pending_files | wc -l)" -eq 3 ] || fail "pending: $(pending_files)"
	# What a crash in the middle of a commit leaves: a file with no row,
	# and a half-written temporary file.
	local orphan=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
	printf 'junk' >"$B/pending/$orphan"
	printf 'half' >"$B/pending/$orphan.123.456"
	mount_dsfs_fg
	for i in 1 2 3; do
		cmp "$D/$i" "$MNT/images/i$i"
		[ -f "$B/$(sha "$D/$i")" ] || fail "image $i not settled"
	done
	[ -z "$(pending_files)" ] || fail "left pending: $(pending_files)"
	[ ! -e "$B/$orphan" ] || fail "an orphan was kept"
	grep -q "image files settled: 3 kept, 2 removed" "$T/log" ||
		fail "no log line: $(cat "$T/log")"
}

@test "a reader keeps the bytes of an image removed under it, across settles" {
	mount_dsfs
	bigimg "$D/old" 500000
	tmo cp "$D/old" "$MNT/images/x"
	run tmo "$PYTHON" -c '
import os, subprocess, sys
path, want, fill = sys.argv[1], open(sys.argv[2], "rb").read(), sys.argv[3]
with open(path, "rb") as f:
    got = f.read(1000)
    os.unlink(path)
    # 20 other images: settles run while the reader holds its image.
    subprocess.run(["sh", "-c", fill], check=True)
    got += f.read()
print("same" if got == want else "different (%d bytes)" % len(got))
' "$MNT/images/x" "$D/old" "for i in \$(seq 20); do { printf '\211PNG\r\n\032\n'; head -c 70000 /dev/urandom; } >$MNT/images/f\$i || exit 1; done"
	[ "$status" -eq 0 ] || fail "reader: $output"
	[ "$output" = same ] || fail "reader: $output"
	[ ! -e "$B/$(sha "$D/old")" ] || fail "the removed image's file stayed after its reader closed"
	unmount_dsfs
	[ "$(blob_files | wc -l)" -eq 20 ] || fail "blob files: $(blob_files | wc -l)"
}

@test "dsfsctl check reads the image files, mounted and not, and leaves nothing behind" {
	mount_dsfs
	bigimg "$D/a" 400000
	tmo cp "$D/a" "$MNT/images/a"
	run tmo "$DSFSCTL" check "$STORE" 3>&- 4>&-
	[ "$status" -eq 0 ] || fail "check of the mounted store: $output"
	[ -z "$(find "$STORE" -maxdepth 1 -name 'check.*')" ] ||
		fail "left: $(ls "$STORE")"
	unmount_dsfs
	run tmo "$DSFSCTL" check "$STORE" 3>&- 4>&-
	[ "$status" -eq 0 ] || fail "check of the store: $output"
	# A file damaged from outside is found.
	printf 'x' >>"$B/$(sha "$D/a")"
	run tmo "$DSFSCTL" check "$STORE" 3>&- 4>&-
	[ "$status" -ne 0 ] || fail "check passed a damaged image file: $output"
}

@test "a disk filled by large images: ENOSPC, nothing left behind, rm frees the space at once" {
	small_store
	B=$STORE/runtime.db-blobs
	mount_dsfs -o runtime_size=64M
	local i=0
	while :; do
		i=$((i + 1))
		bigimg "$D/$i" 500000
		run tmo cp "$D/$i" "$MNT/images/i$i"
		[ "$status" -eq 0 ] || break
		[ "$i" -lt 40 ] || fail "8 MiB never full"
	done
	[[ "$output" == *"No space left on device"* ]] || fail "image $i: $output"
	[ "$i" -gt 3 ] || fail "only $((i - 1)) images fit on 8 MiB"
	# Nothing of the refused image: no entry, no file, nothing pending.
	[ ! -e "$MNT/images/i$i" ] || [ "$(stat -c %s "$MNT/images/i$i")" -eq 0 ] ||
		fail "the refused image is there"
	[ ! -e "$B/$(sha "$D/$i")" ] || fail "a file for the refused image"
	[ -z "$(pending_files | grep -v '^[0-9a-f]*$')" ] || fail "temporary files: $(pending_files)"
	# rm through the mount works and frees the space for the next image.
	rm "$MNT/images/i1" "$MNT/images/i2"
	tmo cp "$D/$i" "$MNT/images/i$i"
	cmp "$D/$i" "$MNT/images/i$i"
	local j
	for j in $(seq 3 $((i - 1))); do
		cmp "$D/$j" "$MNT/images/i$j"
	done
	unmount_dsfs
	run tmo "$DSFSCTL" check "$STORE" 3>&- 4>&-
	[ "$status" -eq 0 ] || fail "dsfsctl check after the full disk: $output"
}

@test "an image whose commit fails after its bytes went into the page cache (the disk filled meanwhile): the old image reads back whole" {
	small_store
	mount_dsfs -o runtime_size=64M
	bigimg "$D/old" 300000
	bigimg "$D/new" 600000
	tmo cp "$D/old" "$MNT/images/x"
	cmp "$D/old" "$MNT/images/x" || fail "the old image"
	# The new image written whole, the disk filled by another program,
	# then the close: its commit pushes the bytes into the kernel's
	# pages, then finds no room for them.
	run tmo "$PYTHON" - "$MNT/images/x" "$D/new" "$SMALL/filler" <<'PY'
import errno, sys
f = open(sys.argv[1], "wb", buffering=0)
f.write(open(sys.argv[2], "rb").read())
with open(sys.argv[3], "wb", buffering=0) as g:
    try:
        while True:
            g.write(b"\0" * 65536)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
try:
    f.close()
except OSError as e:
    print("close: %s" % errno.errorcode[e.errno])
    sys.exit(0)
print("close: no error")
PY
	[ "$output" = "close: ENOSPC" ] || fail "the close: $output"
	cmp "$D/old" "$MNT/images/x" || fail "read after the refused commit"
	cmp "$D/old" "$MNT/images/x" || fail "read again"
	rm "$SMALL/filler"
	tmo cp "$D/new" "$MNT/images/x"
	cmp "$D/new" "$MNT/images/x" || fail "the new image, once it fits"
}
