#!/usr/bin/env bats
# factory.bats - the factory layer as a whole: an image built by
# "dsfsctl mkfactory" from a directory laid out like the mount shows in the
# merged and factory/ trees; "dsfsctl install-factory" replaces it
# atomically, and a live mount shows the new image as soon as the command
# returns, kernel caches included; "dsfsctl factory-reset" empties runtime
# and ephemeral (whiteouts too) so the merged view equals the factory again;
# readers running across installs see the old or the new image, never a
# mix, and an open file keeps its own copy.

load helpers

setup()
{
	setup_store
	S=$T/src
	mkdir -p "$S"
}

teardown()
{
	# Background readers of a failed test must not keep the mount busy.
	if [ -n "${BG_PIDS:-}" ]; then
		# shellcheck disable=SC2086 # a list of pids
		kill $BG_PIDS 2>/dev/null || true
		# shellcheck disable=SC2086
		wait $BG_PIDS 2>/dev/null || true
	fi
	teardown_store
}

# mkf SRC IMAGE: dsfsctl mkfactory SRC IMAGE, failing the test with its
# output if it fails.
mkf()
{
	local out
	out=$(tmo "$DSFSCTL" mkfactory "$1" "$2" 2>&1 3>&- 4>&-) ||
		fail "dsfsctl mkfactory $1 $2 failed: $out" || return 1
	[ -s "$2" ] || fail "dsfsctl mkfactory $1 $2 wrote nothing" || return 1
}

# install IMAGE: dsfsctl install-factory IMAGE $STORE.
install()
{
	local out
	out=$(tmo "$DSFSCTL" install-factory "$1" "$STORE" 2>&1 3>&- 4>&-) ||
		fail "dsfsctl install-factory $1 $STORE failed: $out" || return 1
}

# reset: dsfsctl factory-reset $STORE.
reset()
{
	local out
	out=$(tmo "$DSFSCTL" factory-reset "$STORE" 2>&1 3>&- 4>&-) ||
		fail "dsfsctl factory-reset $STORE failed: $out" || return 1
}

# put DIR/REL CONTENT: writes CONTENT (printf %s) to a source file, making
# its directories.
put()
{
	mkdir -p "$(dirname "$1")"
	printf '%s' "$2" >"$1"
}

# png FILE SEED: a small real PNG image.
png()
{
	"$PYTHON" - "$1" "$2" <<'EOF'
import struct, sys, zlib
seed = int(sys.argv[2])
raw = b"".join(b"\0" + bytes((seed * 31 + y * 7 + x) & 255 for x in range(12))
               for y in range(4))
def chunk(t, d):
    return (struct.pack(">I", len(d)) + t + d +
            struct.pack(">I", zlib.crc32(t + d) & 0xffffffff))
open(sys.argv[1], "wb").write(
    b"\x89PNG\r\n\x1a\n" +
    chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)) +
    chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
EOF
}

# tree DIR: every directory and file under DIR with the SHA-256 of each
# file's bytes, one per line, sorted: two trees print the same iff they
# hold the same names and contents.
tree()
{
	tmo "$PYTHON" - "$1" <<'EOF'
import hashlib, os, sys
top = sys.argv[1]
out = []
for d, dirs, files in os.walk(top, onerror=lambda e: sys.exit("walk: %s" % e)):
    rel = os.path.relpath(d, top)
    out.append("d " + rel)
    for f in files:
        with open(os.path.join(d, f), "rb") as fh:
            out.append("f %s %s" % (os.path.join(rel, f),
                                    hashlib.sha256(fh.read()).hexdigest()))
print("\n".join(sorted(out)))
EOF
}

# same_tree A B: the trees under A and B are equal (says how otherwise).
same_tree()
{
	local a b
	a=$(tree "$1") || fail "tree $1 failed: $a" || return 1
	b=$(tree "$2") || fail "tree $2 failed: $b" || return 1
	[ "$a" = "$b" ] || fail "$1 and $2 differ:" "$(diff <(echo "$a") <(echo "$b"))"
}

@test "mkfactory: kv, images and devices of the source show in the merged and factory trees" {
	put "$S/kv/x" $'"one"\n'
	put "$S/kv/ns/deep/y" '{"a": [1, 2]}'
	put "$S/kv/empty" ''
	mkdir -p "$S/kv/emptydir"
	put "$S/devices/hub1/cfg" $'{"t": 20}\n'
	put "$S/devices/hub1/sub/z" 'true'
	mkdir -p "$S/images/icons"
	png "$S/images/logo" 1
	png "$S/images/icons/i1" 2
	mkdir -p "$STORE"
	mkf "$S" "$STORE/factory.db"
	mount_dsfs
	local tr
	for tr in "" factory/; do
		[ "$(ls1 "$MNT/${tr}kv")" = "$(printf '%s\n' __hub1 empty emptydir ns x)" ] ||
			fail "${tr}kv lists: $(ls1 "$MNT/${tr}kv")"
		[ "$(ls1 "$MNT/${tr}devices")" = hub1 ] ||
			fail "${tr}devices lists: $(ls1 "$MNT/${tr}devices")"
		[ "$(ls1 "$MNT/${tr}images")" = "$(printf '%s\n' icons logo)" ] ||
			fail "${tr}images lists: $(ls1 "$MNT/${tr}images")"
		assert_content "$MNT/${tr}kv/x" $'"one"\n'
		assert_content "$MNT/${tr}kv/ns/deep/y" '{"a": [1, 2]}'
		assert_content "$MNT/${tr}kv/empty" ''
		[ -d "$MNT/${tr}kv/emptydir" ]
		[ -z "$(ls1 "$MNT/${tr}kv/emptydir")" ]
		assert_content "$MNT/${tr}devices/hub1/cfg" $'{"t": 20}\n'
		assert_content "$MNT/${tr}kv/__hub1/cfg" $'{"t": 20}\n'
		assert_content "$MNT/${tr}devices/hub1/sub/z" 'true'
		assert_content "$MNT/${tr}kv/__hub1/sub/z" 'true'
		cmp "$S/images/logo" "$MNT/${tr}images/logo"
		cmp "$S/images/icons/i1" "$MNT/${tr}images/icons/i1"
	done
	[ "$(xattr "$MNT/kv/x" user.dsfs.layer)" = factory ]
	[ "$(xattr "$MNT/devices/hub1/cfg" user.dsfs.layer)" = factory ]
	[ "$(xattr "$MNT/images/logo" user.dsfs.layer)" = factory ]
	[ "$(xattr "$MNT/images/logo" user.dsfs.type)" = image/png ]
	[ "$(xattr "$MNT/kv/ns/deep/y" user.dsfs.type)" = object ]
	for tr in runtime ephemeral; do
		[ -z "$(ls1 "$MNT/$tr/kv")" ] && [ -z "$(ls1 "$MNT/$tr/images")" ] &&
			[ -z "$(ls1 "$MNT/$tr/devices")" ] || fail "$tr is not empty"
	done
	# The whole factory tree is read-only.
	assert_errno write "$MNT/factory/kv/x" '1' EROFS
	assert_errno write "$MNT/factory/devices/hub1/cfg" '1' EROFS
	assert_errno unlink "$MNT/factory/images/logo" EROFS
	assert_errno mkdir "$MNT/factory/kv/ns/new" EROFS
	assert_content "$MNT/kv/x" $'"one"\n'
}

# The two factory images of the install tests: v1 and v2 differ in every
# way a kernel cache could hide: same-length contents ("one"/"two"), new
# lengths, names added and removed, devices, images.
make_v1_v2()
{
	put "$T/v1/kv/x" $'"one"\n'
	put "$T/v1/kv/len" '1'
	put "$T/v1/kv/old" 'true'
	put "$T/v1/kv/ovr" '"factory ovr v1"'
	put "$T/v1/kv/ns/y" '"v1"'
	put "$T/v1/devices/hub1/y" '{"v": 1}'
	mkdir -p "$T/v1/images"
	png "$T/v1/images/logo" 1
	put "$T/v2/kv/x" $'"two"\n'
	put "$T/v2/kv/len" '[1, 2, 3, 4, 5]'
	put "$T/v2/kv/new" 'false'
	put "$T/v2/kv/ovr" '"factory ovr v2"'
	put "$T/v2/kv/ns/y" '"v2"'
	put "$T/v2/devices/hub1/y" '{"v": 2222}'
	mkdir -p "$T/v2/images"
	png "$T/v2/images/logo" 2
	mkf "$T/v1" "$T/v1.db"
	mkf "$T/v2" "$T/v2.db"
}

# check_v2: the mount shows v2 everywhere (and the runtime entries rt and
# ovr that the install tests write).
check_v2()
{
	assert_content "$MNT/kv/x" $'"two"\n'
	assert_content "$MNT/factory/kv/x" $'"two"\n'
	assert_content "$MNT/kv/len" '[1, 2, 3, 4, 5]'
	assert_content "$MNT/factory/kv/len" '[1, 2, 3, 4, 5]'
	[ "$(stat -c %s "$MNT/kv/len")" = 15 ] || fail "kv/len: st_size $(stat -c %s "$MNT/kv/len")"
	assert_content "$MNT/kv/new" 'false'
	assert_errno stat "$MNT/kv/old" ENOENT
	assert_errno stat "$MNT/factory/kv/old" ENOENT
	[ "$(ls1 "$MNT/kv")" = "$(printf '%s\n' __hub1 len new ns ovr rt x)" ] ||
		fail "kv lists: $(ls1 "$MNT/kv")"
	[ "$(ls1 "$MNT/factory/kv")" = "$(printf '%s\n' __hub1 len new ns ovr x)" ] ||
		fail "factory/kv lists: $(ls1 "$MNT/factory/kv")"
	assert_content "$MNT/kv/ns/y" '"v2"'
	assert_content "$MNT/devices/hub1/y" '{"v": 2222}'
	assert_content "$MNT/kv/__hub1/y" '{"v": 2222}'
	assert_content "$MNT/factory/devices/hub1/y" '{"v": 2222}'
	cmp "$T/v2/images/logo" "$MNT/images/logo"
	cmp "$T/v2/images/logo" "$MNT/factory/images/logo"
	[ "$(xattr "$MNT/images/logo" user.dsfs.token)" = "$(sha256sum <"$T/v2/images/logo" | cut -d' ' -f1)" ]
	cmp "$T/v2/images/logo" "$MNT/images/.by-token/$(sha256sum <"$T/v2/images/logo" | cut -d' ' -f1)"
	# Runtime is untouched by an install.
	assert_content "$MNT/kv/rt" '5'
	assert_content "$MNT/kv/ovr" '"runtime ovr"'
	assert_content "$MNT/factory/kv/ovr" '"factory ovr v2"'
	[ "$(xattr "$MNT/kv/x" user.dsfs.layer)" = factory ]
}

@test "install-factory on a live mount: every tree shows the new image when it returns" {
	make_v1_v2
	make_factory "$T/v1"
	mount_dsfs
	printf '5' >"$MNT/kv/rt"
	printf '"runtime ovr"' >"$MNT/kv/ovr"
	# Let the kernel cache everything of v1: contents, sizes, names.
	assert_content "$MNT/kv/x" $'"one"\n'
	assert_content "$MNT/factory/kv/x" $'"one"\n'
	assert_content "$MNT/kv/len" '1'
	assert_content "$MNT/factory/kv/len" '1'
	[ "$(stat -c %s "$MNT/kv/len")" = 1 ]
	assert_content "$MNT/kv/old" 'true'
	assert_errno stat "$MNT/kv/new" ENOENT
	[ "$(ls1 "$MNT/kv")" = "$(printf '%s\n' __hub1 len ns old ovr rt x)" ]
	[ "$(ls1 "$MNT/factory/kv")" = "$(printf '%s\n' __hub1 len ns old ovr x)" ]
	assert_content "$MNT/kv/ns/y" '"v1"'
	assert_content "$MNT/devices/hub1/y" '{"v": 1}'
	assert_content "$MNT/kv/__hub1/y" '{"v": 1}'
	assert_content "$MNT/factory/devices/hub1/y" '{"v": 1}'
	cmp "$T/v1/images/logo" "$MNT/images/logo"
	xattr "$MNT/images/logo" user.dsfs.token >/dev/null
	# A shell sits in a factory directory across the install.
	(
		cd "$MNT/factory/kv/ns" || exit 1
		i=0
		while [ ! -e "$T/go" ] && [ $i -lt 600 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		timeout 10 cat y >"$T/cwd.cat" 2>&1
		timeout 10 ls >"$T/cwd.ls" 2>&1
	) 3>&- 4>&- &
	BG_PIDS=$!
	sleep 0.3
	install "$T/v2.db"
	check_v2
	touch "$T/go"
	wait "$BG_PIDS" || true
	BG_PIDS=
	[ "$(cat "$T/cwd.cat")" = '"v2"' ] || fail "cat y in factory/kv/ns: $(cat "$T/cwd.cat")"
	[ "$(cat "$T/cwd.ls")" = y ] || fail "ls in factory/kv/ns: $(cat "$T/cwd.ls")"
	# And it stays.
	remount_dsfs
	check_v2
}

@test "install-factory offline: the next mount shows the new image" {
	make_v1_v2
	make_factory "$T/v1"
	mount_dsfs
	assert_content "$MNT/kv/x" $'"one"\n'
	printf '5' >"$MNT/kv/rt"
	printf '"runtime ovr"' >"$MNT/kv/ovr"
	unmount_dsfs
	install "$T/v2.db"
	mount_dsfs
	check_v2
}

@test "install-factory offline on a store that had no factory image" {
	make_v1_v2
	mount_dsfs
	[ -z "$(ls1 "$MNT/factory/kv")" ]
	printf '5' >"$MNT/kv/rt"
	printf '"runtime ovr"' >"$MNT/kv/ovr"
	unmount_dsfs
	install "$T/v2.db"
	mount_dsfs
	check_v2
}

@test "install-factory live on a store that had no factory image" {
	make_v1_v2
	mount_dsfs
	[ -z "$(ls1 "$MNT/factory/kv")" ]
	[ -z "$(ls1 "$MNT/devices")" ]
	assert_errno stat "$MNT/kv/x" ENOENT
	assert_errno stat "$MNT/factory/kv/x" ENOENT
	printf '5' >"$MNT/kv/rt"
	printf '"runtime ovr"' >"$MNT/kv/ovr"
	[ "$(ls1 "$MNT/kv")" = "$(printf '%s\n' ovr rt)" ]
	install "$T/v2.db"
	check_v2
}

# make_reset_store: a factory and, over it, runtime and ephemeral changes
# of every kind: overrides, new entries, whiteouts (files and a whole
# directory), devices, images.
make_reset_store()
{
	put "$S/kv/a" '"fa"'
	put "$S/kv/b" '"fb"'
	put "$S/kv/ns/c" '1'
	put "$S/kv/ns/d" '2'
	put "$S/kv/gone/e" '3'
	put "$S/devices/hub1/cfg" '{"t": 1}'
	mkdir -p "$S/images"
	png "$S/images/logo" 1
	make_factory "$S"
}

change_everything()
{
	printf '"changed"' >"$MNT/kv/a"
	rm "$MNT/kv/b"
	rm "$MNT/kv/ns/c"
	rm -r "$MNT/kv/gone"
	printf '7' >"$MNT/kv/ns/d"
	printf '1' >"$MNT/kv/n"
	mkdir "$MNT/kv/newdir"
	printf '{}' >"$MNT/kv/newdir/f"
	printf '{"t": 2}' >"$MNT/devices/hub1/cfg"
	mkdir "$MNT/devices/hub2"
	printf '0' >"$MNT/devices/hub2/v"
	png "$T/logo2" 2
	cp "$T/logo2" "$MNT/images/logo"
	cp "$T/logo2" "$MNT/images/new"
	printf '"eph"' >"$MNT/ephemeral/kv/a"
	printf '1' >"$MNT/ephemeral/kv/e"
	mkdir "$MNT/ephemeral/devices/hub3"
	cp "$T/logo2" "$MNT/ephemeral/images/tmp"
	# Check the changes took, and let the kernel cache them.
	assert_content "$MNT/kv/a" '"eph"'
	assert_errno stat "$MNT/kv/b" ENOENT
	assert_errno stat "$MNT/kv/gone" ENOENT
	[ "$(ls1 "$MNT/kv")" = "$(printf '%s\n' __hub1 __hub2 __hub3 a e n newdir ns)" ] ||
		fail "kv lists: $(ls1 "$MNT/kv")"
	[ "$(ls1 "$MNT/kv/ns")" = d ]
	assert_content "$MNT/kv/ns/d" '7'
	assert_content "$MNT/devices/hub1/cfg" '{"t": 2}'
	[ "$(ls1 "$MNT/devices")" = "$(printf '%s\n' hub1 hub2 hub3)" ]
	cmp "$T/logo2" "$MNT/images/logo"
	[ "$(ls1 "$MNT/images")" = "$(printf '%s\n' logo new tmp)" ]
}

# check_reset: the merged view equals the factory, runtime and ephemeral
# are empty.
check_reset()
{
	local tr l
	for l in runtime ephemeral; do
		for tr in kv images devices; do
			[ -z "$(ls1 "$MNT/$l/$tr")" ] ||
				fail "$l/$tr is not empty: $(ls1 "$MNT/$l/$tr")" || return 1
		done
	done
	for tr in kv images devices; do
		same_tree "$MNT/$tr" "$MNT/factory/$tr" || return 1
	done
	same_tree "$MNT/images" "$S/images" || return 1
	same_tree "$MNT/devices" "$S/devices" || return 1
	assert_content "$MNT/kv/a" '"fa"'
	assert_content "$MNT/kv/b" '"fb"'
	assert_content "$MNT/kv/ns/c" '1'
	assert_content "$MNT/kv/ns/d" '2'
	assert_content "$MNT/kv/gone/e" '3'
	assert_content "$MNT/devices/hub1/cfg" '{"t": 1}'
	assert_errno stat "$MNT/kv/n" ENOENT
	assert_errno stat "$MNT/devices/hub2" ENOENT
	assert_errno stat "$MNT/images/new" ENOENT
	cmp "$S/images/logo" "$MNT/images/logo"
	[ "$(xattr "$MNT/kv/a" user.dsfs.layer)" = factory ]
	[ "$(xattr "$MNT/kv/b" user.dsfs.layer)" = factory ]
	[ "$(xattr "$MNT/images/logo" user.dsfs.layer)" = factory ]
}

@test "factory-reset on a live mount: runtime and ephemeral are emptied, whiteouts included" {
	make_reset_store
	mount_dsfs
	change_everything
	reset
	check_reset
	# The store works on: a write after the reset lands in runtime.
	printf '"after"' >"$MNT/kv/b"
	assert_content "$MNT/runtime/kv/b" '"after"'
	rm "$MNT/runtime/kv/b"
	remount_dsfs
	check_reset
}

@test "factory-reset offline: the next mount shows the factory alone" {
	make_reset_store
	mount_dsfs
	change_everything
	unmount_dsfs
	reset
	mount_dsfs
	check_reset
}

# The reader of the concurrency test: until $T/stop exists (at most 120 s),
# reads k1..k50 through kv/ and factory/kv/ and lists both directories.
# Each file must read exactly "A" or "B" (a pass that spans an install may
# see both); a listing must be exactly k1..k50.  Prints the counts.
DSFS_MIX_READER='
import os, sys, time
mnt, stop = sys.argv[1], sys.argv[2]
vals = {b"\"A\"\n": "A", b"\"B\"\n": "B"}
keys = ["k%d" % i for i in range(1, 51)]
want = sorted(keys)
seen = {"A": 0, "B": 0}
bad = []
passes = 0
end = time.time() + 120
while time.time() < end and not os.path.exists(stop):
    for tree in ("kv", "factory/kv"):
        d = os.path.join(mnt, tree)
        try:
            names = sorted(os.listdir(d))
            if names != want:
                bad.append("listing %s: %r" % (tree, names[:5] + ["..."]))
        except OSError as e:
            bad.append("listing %s: %s" % (tree, e))
        for k in keys:
            p = os.path.join(d, k)
            try:
                with open(p, "rb") as f:
                    b = f.read()
            except OSError as e:
                bad.append("%s: %s" % (p, e))
                continue
            if b in vals:
                seen[vals[b]] += 1
            else:
                bad.append("%s: %r" % (p, b))
    passes += 1
print("passes=%d A=%d B=%d bad=%d" % (passes, seen["A"], seen["B"], len(bad)))
for b in bad[:20]:
    print(b)
'

@test "reads in parallel with 20 installs see a whole A or B value in every file, never an error" {
	local i
	"$PYTHON" -c '
import os, sys
for v in "AB":
    os.makedirs("%s/%s/kv" % (sys.argv[1], v))
    for i in range(1, 51):
        open("%s/%s/kv/k%d" % (sys.argv[1], v, i), "w").write("\"%s\"\n" % v)
' "$T"
	mkf "$T/A" "$T/A.db"
	mkf "$T/B" "$T/B.db"
	make_factory "$T/A"
	mount_dsfs
	assert_content "$MNT/kv/k1" $'"A"\n'
	timeout 180 "$PYTHON" -c "$DSFS_MIX_READER" "$MNT" "$T/stop" \
		>"$T/reader.out" 2>&1 3>&- 4>&- &
	BG_PIDS=$!
	sleep 0.5
	local img errs=
	for i in $(seq 1 20); do
		if [ $((i % 2)) -eq 1 ]; then img=$T/B.db; else img=$T/A.db; fi
		install "$img" || errs="$errs install $i failed;"
		sleep 0.1
	done
	sleep 0.5
	touch "$T/stop"
	wait "$BG_PIDS" || true
	BG_PIDS=
	[ -z "$errs" ] || fail "$errs"
	echo "reader: $(cat "$T/reader.out")" >&2
	[[ $(head -1 "$T/reader.out") =~ ^passes=([0-9]+)\ A=([0-9]+)\ B=([0-9]+)\ bad=0$ ]] ||
		fail "the reader saw bad values: $(cat "$T/reader.out")"
	[ "${BASH_REMATCH[3]}" -gt 0 ] || fail "the reader never saw B: $(cat "$T/reader.out")"
	[ "${BASH_REMATCH[1]}" -ge 5 ] || fail "the reader made too few passes: $(cat "$T/reader.out")"
	# The last install was A.
	run tmo "$PYTHON" -c '
import sys
for t in ("kv", "factory/kv"):
    for i in range(1, 51):
        b = open("%s/%s/k%d" % (sys.argv[1], t, i), "rb").read()
        if b != b"\"A\"\n":
            print("%s/k%d: %r" % (t, i, b))
' "$MNT"
	[ "$status" -eq 0 ] && [ -z "$output" ] || fail "after the last install (A): $output"
	[ -z "$(ls1 "$MNT/runtime/kv")" ]
}

# The reader of the open-handle tests: opens FILE, reads 1 byte, installs
# IMAGE, with MODE=peek also reads the new value through a second open,
# then reads the rest.  Prints ok, or what it got.
DSFS_HANDLE_READER='
import subprocess, sys
path, dsfsctl, image, store, old, new, mode = sys.argv[1:8]
old_b = open(old, "rb").read()
new_b = open(new, "rb").read()
now = None
with open(path, "rb", buffering=0) as f:
    head = f.read(1)
    r = subprocess.run([dsfsctl, "install-factory", image, store],
                       capture_output=True, timeout=60)
    if r.returncode:
        print("install-factory failed: %r" % r.stderr)
        sys.exit(1)
    if mode == "peek":
        with open(path, "rb") as g:
            now = g.read()
    rest = b""
    while True:
        b = f.read(65536)
        if not b:
            break
        rest += b
got = head + rest
if got != old_b:
    print("the open handle read %d bytes, old is %d, %s" % (len(got), len(old_b),
          "all new" if got == new_b else "a mix: %r...%r" % (got[:8], got[-8:])))
    sys.exit(1)
if now is not None and now != new_b:
    print("a second open after the install read %r..., not the new value" % now[:16])
    sys.exit(1)
with open(path, "rb") as g:
    if g.read() != new_b:
        print("an open after the install does not read the new value")
        sys.exit(1)
print("ok")
'

# make_big_v1_v2: factory images whose kv/big is a 1 MiB JSON string of
# "a" (v1) or "b" (v2): same length, so only the bytes tell them apart.
make_big_v1_v2()
{
	"$PYTHON" -c '
import sys
for d, c in ((sys.argv[1], "a"), (sys.argv[2], "b")):
    open(d, "w").write("\"" + c * (1024 * 1024) + "\"\n")
' "$T/big1" "$T/big2"
	mkdir -p "$T/v1/kv" "$T/v2/kv"
	cp "$T/big1" "$T/v1/kv/big"
	cp "$T/big2" "$T/v2/kv/big"
	mkf "$T/v1" "$T/v1.db"
	mkf "$T/v2" "$T/v2.db"
	make_factory "$T/v1"
}

@test "a factory value opened before an install reads the old value whole" {
	make_big_v1_v2
	mount_dsfs
	cmp "$T/big1" "$MNT/kv/big"
	local tr
	for tr in kv factory/kv; do
		run tmo "$PYTHON" -c "$DSFS_HANDLE_READER" "$MNT/$tr/big" "$DSFSCTL" \
			"$T/v2.db" "$STORE" "$T/big1" "$T/big2" plain
		[ "$status" -eq 0 ] && [ "$output" = ok ] || fail "$tr/big: $output"
		# Back to v1 for the next round.
		install "$T/v1.db"
		cmp "$T/big1" "$MNT/$tr/big"
	done
}

@test "an open factory value keeps its old bytes while a new open reads the new image" {
	make_big_v1_v2
	mount_dsfs
	cmp "$T/big1" "$MNT/kv/big"
	run tmo "$PYTHON" -c "$DSFS_HANDLE_READER" "$MNT/kv/big" "$DSFSCTL" \
		"$T/v2.db" "$STORE" "$T/big1" "$T/big2" peek
	[ "$status" -eq 0 ] && [ "$output" = ok ] || fail "$output"
	cmp "$T/big2" "$MNT/kv/big"
}
