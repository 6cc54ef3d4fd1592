#!/usr/bin/env bats
# metadata.bats - mode, owner, group and times kept per entry and across
# remounts; new entries owned by the creating process; permissions enforced
# (default_permissions); the read-only user.dsfs.* extended attributes.
#
# The tests that act as another user run as root with setpriv and need the
# mount made with allow_other.

load helpers

setup()
{
	setup_store
	NOBODY_UID=$(id -u nobody)
	NOBODY_GID=$(getent group nogroup | cut -d: -f3)
}

teardown()
{
	teardown_store
}

# as_nobody CMD...: runs CMD as nobody:nogroup, no supplementary groups.
as_nobody()
{
	timeout "$OP_TIMEOUT" setpriv --reuid="$NOBODY_UID" --regid="$NOBODY_GID" \
		--clear-groups -- "$@"
}

need_root()
{
	[ "$(id -u)" = 0 ] || fail "this test needs root (setpriv, chown)"
}

@test "a new entry is owned by the creating process's uid and gid" {
	need_root
	mount_dsfs -o allow_other
	mkdir "$MNT/kv/pub"
	chmod 1777 "$MNT/kv/pub"
	echo 1 >"$MNT/kv/pub/root-made"
	as_nobody sh -c "echo '\"mine\"' >'$MNT/kv/pub/n'"
	as_nobody mkdir "$MNT/kv/pub/nd"
	as_nobody sh -c "echo 2 >'$MNT/ephemeral/kv/pub-e'" && fail "nobody wrote to root's ephemeral/kv"
	[ "$(stat -c %u:%g "$MNT/kv/pub/n")" = "$NOBODY_UID:$NOBODY_GID" ]
	[ "$(stat -c %u:%g "$MNT/kv/pub/nd")" = "$NOBODY_UID:$NOBODY_GID" ]
	[ "$(stat -c %u:%g "$MNT/kv/pub/root-made")" = 0:0 ]
	assert_content "$MNT/kv/pub/n" $'"mine"\n'
	remount_dsfs -o allow_other
	[ "$(stat -c %u:%g "$MNT/kv/pub/n")" = "$NOBODY_UID:$NOBODY_GID" ]
	[ "$(stat -c %u:%g "$MNT/kv/pub/nd")" = "$NOBODY_UID:$NOBODY_GID" ]
	[ "$(stat -c %a "$MNT/kv/pub")" = 1777 ]
}

@test "chmod, chown and touch -d are kept across a remount" {
	need_root
	mount_dsfs
	echo '[1]' >"$MNT/kv/x"
	mkdir "$MNT/kv/d"
	chmod 640 "$MNT/kv/x"
	chmod 710 "$MNT/kv/d"
	chown "$NOBODY_UID:$NOBODY_GID" "$MNT/kv/x"
	chown 1234:5678 "$MNT/kv/d"
	touch -m -d '2001-02-03 04:05:06.5' "$MNT/kv/x"
	touch -a -d '2002-03-04 05:06:07' "$MNT/kv/x"
	touch -d '2003-04-05 06:07:08' "$MNT/kv/d"
	local mt at dt
	mt=$(date -d '2001-02-03 04:05:06' +%s)
	at=$(date -d '2002-03-04 05:06:07' +%s)
	dt=$(date -d '2003-04-05 06:07:08' +%s)
	check()
	{
		[ "$(stat -c %a "$MNT/kv/x")" = 640 ]
		[ "$(stat -c %a "$MNT/kv/d")" = 710 ]
		[ "$(stat -c %u:%g "$MNT/kv/x")" = "$NOBODY_UID:$NOBODY_GID" ]
		[ "$(stat -c %u:%g "$MNT/kv/d")" = 1234:5678 ]
		[ "$(stat -c %Y "$MNT/kv/x")" = "$mt" ]
		[ "$(stat -c %y "$MNT/kv/x")" = "$(date -d '2001-02-03 04:05:06.5' '+%Y-%m-%d %H:%M:%S.%N %z')" ]
		[ "$(stat -c %X "$MNT/kv/x")" = "$at" ]
		[ "$(stat -c %Y "$MNT/kv/d")" = "$dt" ]
		assert_content "$MNT/kv/x" $'[1]\n'
	}
	check
	remount_dsfs
	check
	kill_daemon
	unmount_dsfs
	mount_dsfs
	check
}

@test "a later write keeps the mode and the owner" {
	need_root
	mount_dsfs
	echo 1 >"$MNT/kv/x"
	chmod 600 "$MNT/kv/x"
	chown "$NOBODY_UID:$NOBODY_GID" "$MNT/kv/x"
	echo 2 >"$MNT/kv/x"
	[ "$(stat -c %a "$MNT/kv/x")" = 600 ]
	[ "$(stat -c %u:%g "$MNT/kv/x")" = "$NOBODY_UID:$NOBODY_GID" ]
	remount_dsfs
	assert_content "$MNT/kv/x" $'2\n'
	[ "$(stat -c %a "$MNT/kv/x")" = 600 ]
	[ "$(stat -c %u:%g "$MNT/kv/x")" = "$NOBODY_UID:$NOBODY_GID" ]
}

@test "the creator's umask and mkdir -m set the mode of new entries" {
	mount_dsfs
	(umask 077 && echo 1 >"$MNT/kv/private")
	(umask 022 && echo 1 >"$MNT/kv/public")
	(umask 002 && echo 1 >"$MNT/kv/group")
	mkdir -m 700 "$MNT/kv/pd"
	(umask 022 && mkdir "$MNT/kv/d")
	[ "$(stat -c %a "$MNT/kv/private")" = 600 ]
	[ "$(stat -c %a "$MNT/kv/public")" = 644 ]
	[ "$(stat -c %a "$MNT/kv/group")" = 664 ]
	[ "$(stat -c %a "$MNT/kv/pd")" = 700 ]
	[ "$(stat -c %a "$MNT/kv/d")" = 755 ]
	remount_dsfs
	[ "$(stat -c %a "$MNT/kv/private")" = 600 ]
	[ "$(stat -c %a "$MNT/kv/pd")" = 700 ]
}

@test "permissions are enforced: another user cannot read a 0600 file or write a 0644 one" {
	need_root
	mount_dsfs -o allow_other
	echo '"secret"' >"$MNT/kv/secret"
	chmod 600 "$MNT/kv/secret"
	echo '"public"' >"$MNT/kv/public"
	chmod 644 "$MNT/kv/public"
	mkdir -m 755 "$MNT/kv/rootdir"
	run as_nobody cat "$MNT/kv/secret"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	run as_nobody cat "$MNT/kv/public"
	[ "$status" -eq 0 ]
	[ "$output" = '"public"' ]
	run as_nobody sh -c "echo 1 >'$MNT/kv/public'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	run as_nobody sh -c "echo 1 >'$MNT/kv/rootdir/new'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	run as_nobody sh -c "echo 1 >'$MNT/kv/new-at-top'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	run as_nobody rm -f "$MNT/kv/public"
	[ "$status" -ne 0 ]
	run as_nobody chmod 666 "$MNT/kv/public"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run as_nobody "$PYTHON" -c "$DSFS_PYOPS" read "$MNT/kv/secret"
	[ "$output" = EACCES ]
	assert_content "$MNT/kv/public" $'"public"\n'
	[ "$(stat -c %a "$MNT/kv/public")" = 644 ]
	[ ! -e "$MNT/kv/rootdir/new" ]
	[ ! -e "$MNT/kv/new-at-top" ]
	# The owner may.
	chown "$NOBODY_UID:$NOBODY_GID" "$MNT/kv/secret"
	run as_nobody cat "$MNT/kv/secret"
	[ "$status" -eq 0 ]
	[ "$output" = '"secret"' ]
}

@test "mtime follows writes, ctime follows chmod" {
	mount_dsfs
	echo 1 >"$MNT/kv/x"
	touch -d '2001-01-01' "$MNT/kv/x"
	local old c0 c1
	old=$(stat -c %Y "$MNT/kv/x")
	c0=$(stat -c %Z "$MNT/kv/x")
	sleep 1.1
	echo 2 >"$MNT/kv/x"
	[ "$(stat -c %Y "$MNT/kv/x")" -gt "$old" ]
	[ "$(stat -c %Y "$MNT/kv/x")" -ge "$(($(date +%s) - 60))" ]
	sleep 1.1
	c0=$(stat -c %Z "$MNT/kv/x")
	sleep 1.1
	chmod 600 "$MNT/kv/x"
	c1=$(stat -c %Z "$MNT/kv/x")
	[ "$c1" -gt "$c0" ]
}

@test "chmod of a factory value through kv/ copies it up with the new mode" {
	mkdir -p "$T/f/kv"
	echo '"factory"' >"$T/f/kv/v"
	make_factory "$T/f"
	mount_dsfs
	local fmode
	fmode=$(stat -c %a "$MNT/factory/kv/v")
	chmod 600 "$MNT/kv/v"
	[ "$(stat -c %a "$MNT/kv/v")" = 600 ]
	[ "$(xattr "$MNT/kv/v" user.dsfs.layer)" = runtime ]
	[ "$(stat -c %a "$MNT/runtime/kv/v")" = 600 ]
	assert_content "$MNT/runtime/kv/v" $'"factory"\n'
	[ "$(stat -c %a "$MNT/factory/kv/v")" = "$fmode" ]
}

@test "user.dsfs.type names the JSON type; directories are objects" {
	mount_dsfs
	local v t
	while read -r t v; do
		printf '%s' "$v" >"$MNT/kv/$t"
		[ "$(xattr "$MNT/kv/$t" user.dsfs.type)" = "$t" ] ||
			fail "type of '$v': $(xattr "$MNT/kv/$t" user.dsfs.type), expected $t"
	done <<'EOF'
object  {"a": [1]}
array  [{"a": 1}]
string  "s"
number  -1.5e3
boolean  false
null  null
EOF
	printf ' true ' >"$MNT/kv/t2"
	[ "$(xattr "$MNT/kv/t2" user.dsfs.type)" = boolean ]
	touch "$MNT/kv/e"
	[ "$(xattr "$MNT/kv/e" user.dsfs.type)" = empty ]
	mkdir "$MNT/kv/d"
	[ "$(xattr "$MNT/kv/d" user.dsfs.type)" = object ]
	# The type follows the value.
	echo '[]' >"$MNT/kv/string"
	[ "$(xattr "$MNT/kv/string" user.dsfs.type)" = array ]
}

@test "user.dsfs.version increases on every committed change, not on refused ones" {
	mount_dsfs
	local v0 v1 v2 v3 v4
	echo 1 >"$MNT/kv/x"
	v0=$(xattr "$MNT/kv/x" user.dsfs.version)
	[[ "$v0" =~ ^[0-9]+$ ]] || fail "version is not an integer: $v0"
	echo 2 >"$MNT/kv/x"
	v1=$(xattr "$MNT/kv/x" user.dsfs.version)
	[ "$v1" -gt "$v0" ]
	echo 2 >"$MNT/kv/x"
	v2=$(xattr "$MNT/kv/x" user.dsfs.version)
	[ "$v2" -gt "$v1" ]
	pyop write_steps "$MNT/kv/x" '{"bad": }' >/dev/null
	v3=$(xattr "$MNT/kv/x" user.dsfs.version)
	[ "$v3" = "$v2" ]
	cat "$MNT/kv/x" >/dev/null
	[ "$(xattr "$MNT/kv/x" user.dsfs.version)" = "$v2" ]
	remount_dsfs
	v4=$(xattr "$MNT/kv/x" user.dsfs.version)
	[ "$v4" = "$v2" ]
	echo 3 >"$MNT/kv/x"
	[ "$(xattr "$MNT/kv/x" user.dsfs.version)" -gt "$v4" ]
}

@test "user.dsfs.layer names the layer; getfattr lists the attributes" {
	mount_dsfs
	echo 1 >"$MNT/kv/r"
	echo 1 >"$MNT/ephemeral/kv/e"
	[ "$(xattr "$MNT/kv/r" user.dsfs.layer)" = runtime ]
	[ "$(xattr "$MNT/kv/e" user.dsfs.layer)" = ephemeral ]
	[ "$(xattr "$MNT/runtime/kv/r" user.dsfs.layer)" = runtime ]
	run tmo getfattr --absolute-names -n user.dsfs.layer --only-values "$MNT/kv/r"
	[ "$status" -eq 0 ]
	[ "$output" = runtime ]
	run tmo getfattr --absolute-names -d "$MNT/kv/r"
	[ "$status" -eq 0 ]
	[[ "$output" == *'user.dsfs.layer="runtime"'* ]]
	[[ "$output" == *'user.dsfs.type="number"'* ]]
	[[ "$output" == *'user.dsfs.version='* ]]
	# Other names do not exist (ENODATA) or are not supported at all.
	run pyop getxattr "$MNT/kv/r" user.other
	[ "$output" = ENODATA ] || [ "$output" = ENOTSUP ] ||
		fail "getxattr user.other: $output"
}

@test "stat: regular files with nlink 1 and the value's size; directories" {
	mount_dsfs
	printf '"12345"' >"$MNT/kv/x"
	mkdir "$MNT/kv/d"
	[ "$(stat -c %F "$MNT/kv/x")" = "regular file" ]
	[ "$(stat -c %h "$MNT/kv/x")" = 1 ]
	[ "$(stat -c %s "$MNT/kv/x")" = 7 ]
	[ "$(stat -c %F "$MNT/kv/d")" = directory ]
	[ "$(stat -c %F "$MNT/kv")" = directory ]
}
