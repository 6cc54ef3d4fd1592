#!/usr/bin/env bats
# errors.bats - every row of DESIGN.md's error table, seen from the shell
# and from python (the errno name), and the log line that each failure
# leaves (stderr of a foreground daemon), naming the path and the reason.

load helpers

setup()
{
	setup_store
}

teardown()
{
	teardown_store
}

# log_line PATTERN...: prints a line of $T/log that matches every pattern
# (grep -i -E); fails if there is none.
log_line()
{
	local lines p
	sleep 0.2
	lines=$(cat "$T/log")
	for p in "$@"; do
		lines=$(printf '%s\n' "$lines" | grep -i -E -e "$p") || return 1
	done
	[ -n "$lines" ] && printf '%s\n' "$lines"
}

# log_has_line PATTERN...: fails unless log_line finds a line.  Prints the
# log on failure.
log_has_line()
{
	log_line "$@" >/dev/null ||
		fail "no log line matches all of: $*; the log is:" "$(cat "$T/log")"
}

@test "EROFS: a write under factory/" {
	mkdir -p "$T/f/kv"
	echo '"v"' >"$T/f/kv/k"
	make_factory "$T/f"
	mount_dsfs
	assert_errno write "$MNT/factory/kv/k" '"w"' EROFS
	assert_errno create "$MNT/factory/kv/n" EROFS
	assert_errno unlink "$MNT/factory/kv/k" EROFS
	assert_errno mkdir "$MNT/factory/images/d" EROFS
	run tmo bash -c "echo '\"w\"' >'$MNT/factory/kv/k'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	assert_content "$MNT/factory/kv/k" $'"v"\n'
}

@test "EINVAL: content that is not valid JSON, in kv/ and in devices/" {
	mount_dsfs
	echo '"keep"' >"$MNT/kv/x"
	mkdir "$MNT/devices/d1"
	echo '"keep"' >"$MNT/devices/d1/x"
	local f got
	for f in "$MNT/kv/x" "$MNT/devices/d1/x" "$MNT/ephemeral/kv/y" "$MNT/runtime/kv/y"; do
		run tmo bash -c "echo '{\"a\": }' >'$f'"
		[ "$status" -ne 0 ]
		[[ "$output" == *"Invalid argument"* ]]
		[ "$(pyop write_steps "$f" '{"a":' )" = "write=OK close=EINVAL" ]
		got=$(pyop write_steps "$f" '[1,,')
		[ "$got" = "write=EINVAL close=OK" ] ||
			[ "$got" = "write=EINVAL close=EINVAL" ] ||
			fail "$f: [1,, gave $got"
	done
	assert_content "$MNT/kv/x" $'"keep"\n'
	assert_content "$MNT/devices/d1/x" $'"keep"\n'
}

@test "ENOSPC: a layer's budget exceeded" {
	mount_dsfs -o runtime_size=8K
	echo '"small"' >"$MNT/kv/x"
	"$PYTHON" -c 'print("\"" + "x" * 10000 + "\"")' >"$T/big"
	run tmo cp "$T/big" "$MNT/kv/x"
	[ "$status" -ne 0 ]
	[[ "$output" == *"No space left on device"* ]]
	assert_content "$MNT/kv/x" $'"small"\n'
	local got
	got=$(pyop write_steps "$MNT/kv/x" "$(cat "$T/big")")
	case $got in
	"write=ENOSPC close=OK" | "write=ENOSPC close=ENOSPC" | "write=OK close=ENOSPC") ;;
	*) fail "expected ENOSPC, got $got" ;;
	esac
	assert_content "$MNT/kv/x" $'"small"\n'
}

@test "ENAMETOOLONG: a name over 255 bytes" {
	mount_dsfs
	local n256
	n256=$(printf 'n%.0s' $(seq 256))
	assert_errno create "$MNT/kv/$n256" ENAMETOOLONG
	assert_errno mkdir "$MNT/kv/$n256" ENAMETOOLONG
	assert_errno mkdir "$MNT/devices/$n256" ENAMETOOLONG
	assert_errno create "$MNT/ephemeral/kv/$n256" ENAMETOOLONG
	echo 1 >"$MNT/kv/a"
	assert_errno rename "$MNT/kv/a" "$MNT/kv/$n256" ENAMETOOLONG
	assert_content "$MNT/kv/a" $'1\n'
	run tmo touch "$MNT/kv/$n256"
	[ "$status" -ne 0 ]
	[[ "$output" == *"File name too long"* ]]
}

@test "EINVAL: a name that is not valid UTF-8" {
	mount_dsfs
	assert_errno create "$MNT/kv/"$'\xff' EINVAL
	assert_errno create "$MNT/kv/"$'a\x80b' EINVAL
	assert_errno mkdir "$MNT/kv/"$'\xfe\xfe' EINVAL
	assert_errno mkdir "$MNT/devices/"$'\xff' EINVAL
	assert_errno create "$MNT/ephemeral/kv/"$'\xc3' EINVAL
	echo 1 >"$MNT/kv/a"
	assert_errno rename "$MNT/kv/a" "$MNT/kv/"$'\xff' EINVAL
	assert_content "$MNT/kv/a" $'1\n'
	run tmo touch "$MNT/kv/"$'\xff'
	[ "$status" -ne 0 ]
	[[ "$output" == *"Invalid argument"* ]]
}

@test "EPERM: symlink, hard link, device node, FIFO" {
	mount_dsfs
	echo 1 >"$MNT/kv/a"
	mkdir "$MNT/kv/d"
	assert_errno symlink a "$MNT/kv/l" EPERM
	assert_errno link "$MNT/kv/a" "$MNT/kv/h" EPERM
	assert_errno link "$MNT/kv/a" "$MNT/kv/d/h" EPERM
	assert_errno mknod "$MNT/kv/dev" EPERM
	assert_errno mkfifo "$MNT/kv/fifo" EPERM
	assert_errno symlink a "$MNT/ephemeral/kv/l" EPERM
	assert_errno mkfifo "$MNT/runtime/kv/fifo" EPERM
	run tmo ln -s a "$MNT/kv/l2"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run tmo ln "$MNT/kv/a" "$MNT/kv/h2"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run tmo mkfifo "$MNT/kv/f2"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run tmo mknod "$MNT/kv/n2" c 1 3
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	[ "$(ls1 "$MNT/kv")" = "$(printf '%s\n' a d)" ]
	[ -z "$(ls -A "$MNT/kv/d")" ]
}

@test "EXDEV: rename between trees or layers (mv copies)" {
	mount_dsfs
	echo '[1]' >"$MNT/kv/a"
	echo '[2]' >"$MNT/ephemeral/kv/b"
	assert_errno rename "$MNT/kv/a" "$MNT/runtime/kv/a2" EXDEV
	assert_errno rename "$MNT/ephemeral/kv/b" "$MNT/kv/b2" EXDEV
	assert_errno rename "$MNT/kv/a" "$MNT/images/a" EXDEV
	tmo mv "$MNT/ephemeral/kv/b" "$MNT/runtime/kv/b"
	[ ! -e "$MNT/ephemeral/kv/b" ]
	assert_content "$MNT/runtime/kv/b" $'[2]\n'
}

@test "EPERM: creating or removing anything at the mount root and in the layer directories" {
	mount_dsfs
	local d
	assert_errno mkdir "$MNT/x" EPERM
	assert_errno create "$MNT/x" EPERM
	assert_errno rmdir "$MNT/kv" EPERM
	assert_errno rmdir "$MNT/ephemeral" EPERM
	assert_errno rename "$MNT/kv" "$MNT/kv2" EPERM
	assert_errno symlink kv "$MNT/l" EPERM
	for d in ephemeral runtime factory; do
		assert_errno mkdir "$MNT/$d/x" EPERM
		assert_errno create "$MNT/$d/x" EPERM
		assert_errno rmdir "$MNT/$d/kv" EPERM
		assert_errno rmdir "$MNT/$d/images" EPERM
	done
	run tmo mkdir "$MNT/new"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run tmo touch "$MNT/new"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run tmo touch "$MNT/runtime/new"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run tmo rm -r "$MNT/kv"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run tmo rm -rf "$MNT/ephemeral/devices"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	[ "$(ls1 "$MNT")" = "$(printf '%s\n' devices ephemeral factory images kv runtime)" ]
	[ "$(ls1 "$MNT/ephemeral")" = "$(printf '%s\n' devices images kv)" ]
}

@test "xattrs: user.dsfs.* are read-only and nothing else is stored (ENOTSUP)" {
	mount_dsfs
	echo '{"a": 1}' >"$MNT/kv/x"
	assert_errno setxattr "$MNT/kv/x" user.dsfs.layer x ENOTSUP
	assert_errno setxattr "$MNT/kv/x" user.dsfs.type string ENOTSUP
	assert_errno removexattr "$MNT/kv/x" user.dsfs.version ENOTSUP
	assert_errno setxattr "$MNT/kv/x" user.other v ENOTSUP
	run tmo setfattr -n user.dsfs.layer -v x "$MNT/kv/x"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not supported"* ]]
	run tmo setfattr -n user.comment -v x "$MNT/kv/x"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not supported"* ]]
	[ "$(xattr "$MNT/kv/x" user.dsfs.layer)" = runtime ]
	[ "$(xattr "$MNT/kv/x" user.dsfs.type)" = object ]
	# ENOTSUP is what lets cp -a and mv copy an entry without a warning.
	mkdir "$T/out"
	run tmo cp -a "$MNT/kv/x" "$MNT/kv/y"
	[ "$status" -eq 0 ] && [ -z "$output" ] || fail "cp -a: $output"
	assert_content "$MNT/kv/y" $'{"a": 1}\n'
}

@test "a second mount of the same store is refused: store is in use" {
	mount_dsfs
	echo 1 >"$MNT/kv/a"
	mkdir "$T/mnt2"
	run tmo "$DSFS" "$STORE" "$T/mnt2" 3>&- 4>&-
	if mountpoint -q "$T/mnt2"; then
		fusermount3 -u "$T/mnt2"
		fail "the second mount of $STORE appeared"
	fi
	[ "$status" -ne 0 ]
	[[ "$output" == *"store is in use"* ]]
	assert_content "$MNT/kv/a" $'1\n'
}

@test "bad command lines are refused with a message" {
	run tmo "$DSFS" -o runtime_size=lots "$STORE" "$MNT" 3>&- 4>&-
	[ "$status" -ne 0 ]
	[[ "$output" == *"runtime_size"* ]]
	if mountpoint -q "$MNT"; then fail "mounted despite a bad size"; fi
	run tmo "$DSFS" "$STORE" 3>&- 4>&-
	[ "$status" -ne 0 ]
	[[ "$output" == *"usage"* ]]
	if mountpoint -q "$MNT"; then fail "mounted without a mount point argument?"; fi
}

@test "log: invalid JSON logs one line naming the path and the reason" {
	mount_dsfs_fg
	mkdir "$MNT/kv/app"
	run tmo bash -c "echo '{\"a\": }' >'$MNT/kv/app/bad'"
	[ "$status" -ne 0 ]
	log_has_line 'kv/app/bad' 'json|invalid|expected|syntax|unexpected'
	[ "$(grep -c 'kv/app/bad' "$T/log")" -eq 1 ] ||
		fail "expected one line naming kv/app/bad:" "$(cat "$T/log")"
	# Incomplete at close.
	pyop write_steps "$MNT/kv/app/half" '{"a": ' >/dev/null
	log_has_line 'kv/app/half' 'json|invalid|incomplete|expected|end|truncated'
}

@test "log: EROFS, ENOSPC, EXDEV, EPERM, ENAMETOOLONG, bad UTF-8 each log a line naming the path" {
	mount_dsfs_fg -o runtime_size=8K
	local n256 missing=()
	n256=$(printf 'q%.0s' $(seq 256))
	mkdir "$MNT/kv/sub"
	assert_errno create "$MNT/factory/kv/ro" EROFS
	log_line 'factory/kv/ro' 'read-only|erofs' || missing+=(EROFS)
	"$PYTHON" -c 'print("[" + "1," * 6000 + "1]")' >"$T/big"
	run tmo cp "$T/big" "$MNT/kv/sub/big"
	[ "$status" -ne 0 ]
	log_line 'kv/sub/big' 'space|budget|enospc' || missing+=(ENOSPC)
	echo 1 >"$MNT/kv/sub/mv"
	assert_errno rename "$MNT/kv/sub/mv" "$MNT/runtime/kv/mv2" EXDEV
	log_line 'kv/sub/mv' 'exdev|across' || missing+=(EXDEV)
	assert_errno symlink mv "$MNT/kv/sub/sym" EPERM
	log_line 'kv/sub/sym' 'symlink|symbolic|not permitted|eperm' || missing+=("EPERM symlink")
	assert_errno link "$MNT/kv/sub/mv" "$MNT/kv/sub/hard" EPERM
	log_line 'kv/sub/hard' 'link|not permitted|eperm' || missing+=("EPERM link")
	assert_errno mkfifo "$MNT/kv/sub/fifo" EPERM
	log_line 'kv/sub/fifo' 'fifo|mknod|not permitted|eperm' || missing+=("EPERM mkfifo")
	assert_errno mkdir "$MNT/rootdir" EPERM
	log_line 'rootdir' 'not permitted|eperm|root|fixed' || missing+=("EPERM root")
	assert_errno create "$MNT/kv/sub/$n256" ENAMETOOLONG
	log_line 'kv/sub/qqqq' 'too long|enametoolong|255' || missing+=(ENAMETOOLONG)
	assert_errno create "$MNT/kv/sub/"$'bad\xff' EINVAL
	log_line 'kv/sub/bad' 'utf-8|utf8|invalid' || missing+=("EINVAL name")
	[ ${#missing[@]} -eq 0 ] ||
		fail "no log line naming the path for: ${missing[*]}; the log is:" "$(cat "$T/log")"
}
