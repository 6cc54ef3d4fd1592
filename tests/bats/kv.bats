#!/usr/bin/env bats
# kv.bats - the key-value tree: the mount's layout, JSON values stored and
# read back byte for byte, validation at write and at close, atomic commit
# at close, names, namespaces (directories), rename within kv/.

load helpers

setup()
{
	setup_store
}

teardown()
{
	teardown_store
}

@test "mount creates the store (0700) and runtime.db (0600) and shows the fixed tree" {
	mount_dsfs
	[ -d "$STORE" ]
	[ "$(stat -c %a "$STORE")" = 700 ]
	if [ "${DSFS_TEST_RUNTIME:-sqlite}" = sqlite ]; then # else no file
		[ -f "$STORE/runtime.db" ]
		[ "$(stat -c %a "$STORE/runtime.db")" = 600 ]
	fi
	[ "$(ls1 "$MNT")" = "$(printf '%s\n' devices ephemeral factory images kv runtime)" ]
	for layer in ephemeral runtime factory; do
		[ "$(ls1 "$MNT/$layer")" = "$(printf '%s\n' devices images kv)" ]
	done
	[ -d "$MNT/kv" ]
	[ -z "$(ls -A "$MNT/kv")" ]
}

@test "dsfs returns once the mount is usable" {
	check_fuse
	run tmo "$DSFS" "$STORE" "$MNT" 3>&- 4>&-
	[ "$status" -eq 0 ] || fail "dsfs failed: $output"
	# No waiting: the mount is there when dsfs has returned.
	mountpoint -q "$MNT"
	echo '"now"' >"$MNT/kv/x"
	assert_content "$MNT/kv/x" $'"now"\n'
}

@test "-o cache_timeout=0 and -o cache_timeout=5 are accepted" {
	mount_dsfs -o cache_timeout=0
	echo 1 >"$MNT/kv/x"
	assert_content "$MNT/kv/x" $'1\n'
	remount_dsfs -o cache_timeout=5
	assert_content "$MNT/kv/x" $'1\n'
}

@test "an object is read back byte for byte, surrounding white space included" {
	mount_dsfs
	printf ' \n\t{"volume": 5,\n  "theme" : "dark" }\r\n\n' >"$T/v"
	tmo cp "$T/v" "$MNT/kv/settings"
	tmo cmp "$T/v" "$MNT/kv/settings"
	[ "$(stat -c %s "$MNT/kv/settings")" = "$(stat -c %s "$T/v")" ]
}

@test "any top-level JSON value is accepted and read back exactly" {
	mount_dsfs
	local i=0 v
	for v in '"a string"' '42' '-0.5e+10' 'true' 'false' 'null' \
		'[1, [2, {"x": null}], "z"]' '{}' '[]' '""' \
		'"caf\u00e9 \ud83d\ude00 \"q\" \\ \/"' '"日本語 ünïcödé"' \
		'  7  ' $'\n[\n]\n'; do
		i=$((i + 1))
		assert_errno write "$MNT/kv/v$i" "$v" OK
		assert_content "$MNT/kv/v$i" "$v"
	done
}

@test "a 1 MiB value is stored and read back exactly" {
	mount_dsfs
	"$PYTHON" -c '
import json, sys
json.dump([{"i": i, "s": "x" * 40} for i in range(20000)], sys.stdout)
' >"$T/big"
	[ "$(stat -c %s "$T/big")" -gt 1000000 ]
	tmo cp "$T/big" "$MNT/kv/big"
	tmo cmp "$T/big" "$MNT/kv/big"
	remount_dsfs
	tmo cmp "$T/big" "$MNT/kv/big"
}

@test "a value written in many small writes is accepted (dd bs=1)" {
	mount_dsfs
	printf '{"a": [1, 2.5, "three"], "b": {"c": null}}' >"$T/v"
	tmo dd if="$T/v" of="$MNT/kv/x" bs=1 status=none
	tmo cmp "$T/v" "$MNT/kv/x"
}

@test "touch makes an empty entry of type empty" {
	mount_dsfs
	tmo touch "$MNT/kv/x"
	[ -f "$MNT/kv/x" ]
	[ "$(stat -c %s "$MNT/kv/x")" = 0 ]
	[ "$(xattr "$MNT/kv/x" user.dsfs.type)" = empty ]
	[ "$(ls1 "$MNT/kv")" = x ]
	# Truncating a value to nothing makes it empty again: truncate(1) at
	# once; ": >" (an O_TRUNC open that writes nothing) at its last
	# close, which the kernel reports just after close(2) returns
	# (dsfs.8, Values): a moment later.
	echo '[1]' >"$MNT/kv/y"
	truncate -s 0 "$MNT/kv/y"
	[ "$(stat -c %s "$MNT/kv/y")" = 0 ]
	[ "$(xattr "$MNT/kv/y" user.dsfs.type)" = empty ]
	echo '[1]' >"$MNT/kv/y"
	: >"$MNT/kv/y"
	local i
	for i in $(seq 20); do
		[ "$(stat -c %s "$MNT/kv/y")" = 0 ] && break
		sleep 0.1
	done
	[ "$(stat -c %s "$MNT/kv/y")" = 0 ]
	[ "$(xattr "$MNT/kv/y" user.dsfs.type)" = empty ]
}

@test "invalid JSON is refused at write with EINVAL and the old value stays" {
	mount_dsfs
	echo '{"volume": 5}' >"$MNT/kv/x"
	run tmo bash -c "echo '{\"a\": }' >'$MNT/kv/x'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Invalid argument"* ]]
	assert_content "$MNT/kv/x" $'{"volume": 5}\n'
	# The same through python: the write itself fails.
	[ "$(pyop write_steps "$MNT/kv/x" '{"a": }')" = "write=EINVAL close=OK" ]
	assert_content "$MNT/kv/x" $'{"volume": 5}\n'
}

@test "content still incomplete at close fails the close with EINVAL and the old value stays" {
	mount_dsfs
	echo '{"volume": 5}' >"$MNT/kv/x"
	run tmo "$PYTHON" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"{\"volume\": ")
try:
    os.close(fd)
except OSError as e:
    print("close errno", e.errno)
    sys.exit(0)
print("close succeeded")
sys.exit(1)
' "$MNT/kv/x"
	[ "$status" -eq 0 ]
	[ "$output" = "close errno 22" ]
	assert_content "$MNT/kv/x" $'{"volume": 5}\n'
}

@test "strict JSON: comments, trailing commas, single quotes, NaN, bad UTF-8, two values are refused" {
	mount_dsfs
	local bad got
	echo '"old"' >"$MNT/kv/x"
	for bad in '{"a": 1,}' '[1, 2,]' "{'a': 1}" '{"a": NaN}' 'Infinity' \
		'// c
1' '/* c */ 1' '{"a" 1}' 'tru' '01' '1 2' '{} {}' '"tab	in string"' \
		$'"\xff"' $'"\xc3("' 'undefined' '{"a": 1}}' '+1' '.5' \
		'"\x"'; do
		got=$(pyop write_steps "$MNT/kv/x" "$bad")
		case $got in
		"write=EINVAL close=OK" | "write=OK close=EINVAL") ;;
		*) fail "value '$bad' was not refused with EINVAL: $got" ;;
		esac
		assert_content "$MNT/kv/x" $'"old"\n'
	done
}

@test "a write that can no longer become JSON fails at that write, not only at close" {
	mount_dsfs
	echo '[0]' >"$MNT/kv/x"
	# The first chunk is a valid prefix; the second makes it impossible.
	local got
	got=$(pyop write_steps "$MNT/kv/x" '{"a": [1, ' ']')
	case $got in
	"write=OK write=EINVAL close=EINVAL" | "write=OK write=EINVAL close=OK") ;;
	*) fail "expected the second write to fail with EINVAL: $got" ;;
	esac
	assert_content "$MNT/kv/x" $'[0]\n'
	# A value valid only after all its chunks is fine.
	[ "$(pyop write_steps "$MNT/kv/x" '{"a": [1, ' '2]' '}')" = \
		"write=OK write=OK write=OK close=OK" ]
	assert_content "$MNT/kv/x" '{"a": [1, 2]}'
}

@test "a writer works on its own copy: readers see the old value until close" {
	mount_dsfs
	echo '{"v": 1}' >"$MNT/kv/x"
	# The writer writes, says so, and closes only when told to.  (It runs
	# nothing else meanwhile: a fork+exec would close a copy of its
	# descriptor, which is a close too.)
	"$PYTHON" -c '
import os, sys, time
p, written, go = sys.argv[1:4]
fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"{\"v\": 2}\n")
with open(p, "rb") as f:
    same_process = f.read()
open(written, "wb").write(same_process)
for _ in range(600):
    if os.path.exists(go):
        break
    time.sleep(0.1)
os.close(fd)
' "$MNT/kv/x" "$T/written" "$T/go" 3>&- 4>&- &
	local writer=$! tries=100
	until [ -s "$T/written" ]; do
		tries=$((tries - 1))
		[ $tries -gt 0 ] || fail "the writer did not write"
		sleep 0.1
	done
	assert_content "$T/written" $'{"v": 1}\n'
	assert_content "$MNT/kv/x" $'{"v": 1}\n'
	[ "$(stat -c %s "$MNT/kv/x")" = 9 ]
	touch "$T/go"
	wait "$writer"
	assert_content "$MNT/kv/x" $'{"v": 2}\n'
}

@test "an open file stays usable after it is replaced by rename or removed" {
	mount_dsfs
	echo '"one"' >"$MNT/kv/x"
	echo '"two"' >"$MNT/kv/y"
	echo '"three"' >"$MNT/kv/z"
	run tmo "$PYTHON" -c '
import os, sys
k = sys.argv[1] + "/kv/"
f = open(k + "x", "rb")
os.rename(k + "y", k + "x")
g = open(k + "z", "rb")
os.unlink(k + "z")
res = []
for h in (f, g):
    try:
        res.append(str(os.fstat(h.fileno()).st_size))
    except OSError as e:
        res.append("fstat:" + e.strerror)
    res.append(h.read().decode().strip())
print(" ".join(res))
' "$MNT"
	[ "$status" -eq 0 ]
	[ "$output" = '6 "one" 8 "three"' ] || fail "got: $output"
	assert_content "$MNT/kv/x" $'"two"\n'
	[ ! -e "$MNT/kv/z" ]
}

@test "fchmod, futimens, fchown on a file open for writing: the whole new value reads back at once" {
	mount_dsfs
	echo '[0]' >"$MNT/kv/old"
	# What cp -a, tar x and mv across directories do: set the attributes
	# through the descriptor before closing it.
	run tmo "$PYTHON" -c '
import os, sys
k = sys.argv[1] + "/kv/"
ops = {
    "chmod": lambda fd: os.fchmod(fd, 0o640),
    "utime": lambda fd: os.utime(fd, (1000000000, 1000000000)),
    "chown": lambda fd: os.fchown(fd, os.getuid(), os.getgid()),
}
out = []
for name, op in sorted(ops.items()):
    for target, flags in (("new-" + name, os.O_CREAT | os.O_EXCL), ("old", os.O_TRUNC)):
        fd = os.open(k + target, os.O_WRONLY | flags, 0o644)
        os.write(fd, b"[1, 2, 3]")
        op(fd)
        os.close(fd)
        with open(k + target, "rb") as f:
            got = f.read()
        if got != b"[1, 2, 3]":
            out.append("%s after f%s: %r" % (target, name, got))
        fd = os.open(k + "old", os.O_WRONLY | os.O_TRUNC)
        os.write(fd, b"[0]")
        os.close(fd)
print("; ".join(out) or "all whole")
' "$MNT"
	[ "$status" -eq 0 ]
	[ "$output" = "all whole" ] || fail "$output"
}

@test "two writers: each works on its own copy, the last close wins whole" {
	mount_dsfs
	echo '"start"' >"$MNT/kv/x"
	run tmo "$PYTHON" -c '
import os, sys
p = sys.argv[1]
a = os.open(p, os.O_WRONLY | os.O_TRUNC)
b = os.open(p, os.O_WRONLY | os.O_TRUNC)
os.write(a, b"[\"aaaaaaaaaaaaaaaaaaaa\"]")
os.write(b, b"1")
os.close(a)
print(open(p, "rb").read().decode())
os.close(b)
print(open(p, "rb").read().decode())
' "$MNT/kv/x"
	[ "$status" -eq 0 ]
	[ "$output" = $'["aaaaaaaaaaaaaaaaaaaa"]\n1' ]
}

@test "a write without O_TRUNC edits a copy of the old value" {
	mount_dsfs
	printf '[1, 2]' >"$MNT/kv/x"
	run tmo "$PYTHON" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, b"7", 1)
os.close(fd)
' "$MNT/kv/x"
	[ "$status" -eq 0 ]
	assert_content "$MNT/kv/x" '[7, 2]'
	# Appending white space keeps it valid; appending a value does not.
	printf '\n' >>"$MNT/kv/x"
	assert_content "$MNT/kv/x" $'[7, 2]\n'
	assert_errno append "$MNT/kv/x" '[3]' EINVAL
	assert_content "$MNT/kv/x" $'[7, 2]\n'
}

@test "truncate(2) on a closed value: valid result kept, invalid refused" {
	mount_dsfs
	printf '12345' >"$MNT/kv/n"
	assert_errno truncate "$MNT/kv/n" 3 OK
	assert_content "$MNT/kv/n" '123'
	printf '{"a": 1}' >"$MNT/kv/o"
	assert_errno truncate "$MNT/kv/o" 3 EINVAL
	assert_content "$MNT/kv/o" '{"a": 1}'
}

@test "a 255-byte name works, 256 bytes is ENAMETOOLONG" {
	mount_dsfs
	local n255 n256
	n255=$(printf 'a%.0s' $(seq 255))
	n256=${n255}b
	[ ${#n255} -eq 255 ]
	echo 1 >"$MNT/kv/$n255"
	assert_content "$MNT/kv/$n255" $'1\n'
	[ "$(ls1 "$MNT/kv")" = "$n255" ]
	run tmo bash -c "echo 1 >'$MNT/kv/$n256'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"File name too long"* ]]
	assert_errno create "$MNT/kv/$n256" ENAMETOOLONG
	assert_errno mkdir "$MNT/kv/$n256" ENAMETOOLONG
	# 255 bytes of multi-byte UTF-8 (85 x 3 bytes) is fine too.
	local u
	u=$(printf '語%.0s' $(seq 85))
	echo 2 >"$MNT/kv/$u"
	assert_content "$MNT/kv/$u" $'2\n'
	assert_errno create "$MNT/kv/${u}x" ENAMETOOLONG
}

@test "a name that is not valid UTF-8 is EINVAL; UTF-8 names work" {
	mount_dsfs
	assert_errno create "$MNT/kv/"$'\xff' EINVAL
	assert_errno mkdir "$MNT/kv/"$'bad\xc3(' EINVAL
	assert_errno write "$MNT/kv/"$'\xed\xa0\x80' 1 EINVAL
	assert_errno create "$MNT/kv/"$'\xc0\xaf' EINVAL
	run tmo bash -c "echo 1 >'$MNT/kv/'\$'\\xff'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Invalid argument"* ]]
	[ -z "$(ls -A "$MNT/kv")" ]
	echo '"ok"' >"$MNT/kv/café ünï 日本 😀"
	assert_content "$MNT/kv/café ünï 日本 😀" $'"ok"\n'
	[ "$(ls1 "$MNT/kv")" = "café ünï 日本 😀" ]
}

@test "directories are namespaces: mkdir, nested values, rmdir" {
	mount_dsfs
	mkdir "$MNT/kv/app"
	mkdir -p "$MNT/kv/app/sub/deeper"
	echo 1 >"$MNT/kv/app/counter"
	echo '"x"' >"$MNT/kv/app/sub/deeper/k"
	[ "$(ls1 "$MNT/kv")" = app ]
	[ "$(ls1 "$MNT/kv/app")" = "$(printf '%s\n' counter sub)" ]
	assert_content "$MNT/kv/app/sub/deeper/k" $'"x"\n'
	[ "$(xattr "$MNT/kv/app" user.dsfs.type)" = object ]
	assert_errno rmdir "$MNT/kv/app" ENOTEMPTY
	assert_errno rmdir "$MNT/kv/app/sub" ENOTEMPTY
	run tmo rmdir "$MNT/kv/app"
	[ "$status" -ne 0 ]
	[[ "$output" == *"not empty"* ]]
	rm "$MNT/kv/app/sub/deeper/k"
	rmdir "$MNT/kv/app/sub/deeper" "$MNT/kv/app/sub"
	[ "$(ls1 "$MNT/kv/app")" = counter ]
	remount_dsfs
	assert_content "$MNT/kv/app/counter" $'1\n'
	rm -r "$MNT/kv/app"
	[ -z "$(ls -A "$MNT/kv")" ]
}

@test "usual errors: EEXIST, ENOENT, EISDIR, ENOTDIR" {
	mount_dsfs
	mkdir "$MNT/kv/d"
	echo 1 >"$MNT/kv/f"
	assert_errno mkdir "$MNT/kv/d" EEXIST
	assert_errno mkdir "$MNT/kv/f" EEXIST
	assert_errno create "$MNT/kv/f" EEXIST
	assert_errno unlink "$MNT/kv/nope" ENOENT
	assert_errno rmdir "$MNT/kv/nope" ENOENT
	assert_errno read "$MNT/kv/nope" ENOENT
	assert_errno unlink "$MNT/kv/d" EISDIR
	assert_errno rmdir "$MNT/kv/f" ENOTDIR
	assert_errno create "$MNT/kv/f/x" ENOTDIR
	assert_errno write "$MNT/kv/d" 1 EISDIR
}

@test "rename within kv/: a value, over an existing value, a directory" {
	mount_dsfs
	echo '{"a": 1}' >"$MNT/kv/a"
	echo '"b"' >"$MNT/kv/b"
	assert_errno rename "$MNT/kv/a" "$MNT/kv/c" OK
	[ "$(ls1 "$MNT/kv")" = "$(printf '%s\n' b c)" ]
	assert_content "$MNT/kv/c" $'{"a": 1}\n'
	# Over an existing entry: replaced.
	assert_errno rename "$MNT/kv/c" "$MNT/kv/b" OK
	[ "$(ls1 "$MNT/kv")" = b ]
	assert_content "$MNT/kv/b" $'{"a": 1}\n'
	mkdir -p "$MNT/kv/d/e"
	echo 3 >"$MNT/kv/d/e/f"
	assert_errno rename "$MNT/kv/d" "$MNT/kv/g" OK
	assert_content "$MNT/kv/g/e/f" $'3\n'
	assert_errno rename "$MNT/kv/b" "$MNT/kv/g/e/moved" OK
	assert_content "$MNT/kv/g/e/moved" $'{"a": 1}\n'
	remount_dsfs
	[ "$(ls1 "$MNT/kv")" = g ]
	[ "$(ls1 "$MNT/kv/g/e")" = "$(printf '%s\n' f moved)" ]
	assert_content "$MNT/kv/g/e/moved" $'{"a": 1}\n'
}

@test "rename over an existing value is atomic for readers" {
	mount_dsfs
	"$PYTHON" -c 'import json; print(json.dumps(["a" * 5000] * 20))' >"$T/A"
	"$PYTHON" -c 'import json; print(json.dumps(["b" * 5000] * 20))' >"$T/B"
	cp "$T/A" "$MNT/kv/x"
	run tmo "$PYTHON" -c '
import os, sys, threading
mnt, A, B = sys.argv[1], open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
x, tmp = mnt + "/kv/x", mnt + "/kv/x.tmp"
stop, bad = False, []
def reader():
    while not stop:
        try:
            with open(x, "rb") as f:
                d = f.read()
        except FileNotFoundError:
            bad.append("missing")
            continue
        if d not in (A, B):
            bad.append(len(d))
t = threading.Thread(target=reader)
t.start()
for i in range(100):
    with open(tmp, "wb") as f:
        f.write(B if i % 2 == 0 else A)
    os.rename(tmp, x)
stop = True
t.join()
print("bad reads:", bad[:5], len(bad))
' "$MNT" "$T/A" "$T/B"
	[ "$status" -eq 0 ]
	[ "$output" = "bad reads: [] 0" ]
}

@test "stat reports the size of the stored value at once after a write" {
	mount_dsfs
	printf '[1]' >"$MNT/kv/x"
	[ "$(stat -c %s "$MNT/kv/x")" = 3 ]
	printf '[1, 2, 3, 4]' >"$MNT/kv/x"
	[ "$(stat -c %s "$MNT/kv/x")" = 12 ]
	[ "$(cat "$MNT/kv/x")" = '[1, 2, 3, 4]' ]
}
