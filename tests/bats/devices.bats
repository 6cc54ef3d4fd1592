#!/usr/bin/env bats
# devices.bats - devices/ID/ is the same data as kv/__ID/: creating either
# shows the other, values are validated the same way, removal removes both;
# devices/ lists only the IDs of __ namespaces.

load helpers

setup()
{
	setup_store
}

teardown()
{
	teardown_store
}

@test "mkdir devices/hub1 makes kv/__hub1/ appear" {
	mount_dsfs
	mkdir "$MNT/devices/hub1"
	[ -d "$MNT/kv/__hub1" ]
	[ "$(ls1 "$MNT/kv")" = __hub1 ]
	[ "$(ls1 "$MNT/devices")" = hub1 ]
	[ "$(xattr "$MNT/kv/__hub1" user.dsfs.layer)" = runtime ]
	[ -d "$MNT/runtime/kv/__hub1" ]
}

@test "devices/hub1/cfg is kv/__hub1/cfg, both ways" {
	mount_dsfs
	mkdir "$MNT/devices/hub1"
	echo '{"t":20}' >"$MNT/devices/hub1/cfg"
	assert_content "$MNT/kv/__hub1/cfg" $'{"t":20}\n'
	assert_content "$MNT/devices/hub1/cfg" $'{"t":20}\n'
	echo '{"t":21}' >"$MNT/kv/__hub1/cfg"
	assert_content "$MNT/devices/hub1/cfg" $'{"t":21}\n'
	echo '[true]' >"$MNT/kv/__hub1/other"
	[ "$(ls1 "$MNT/devices/hub1")" = "$(printf '%s\n' cfg other)" ]
	assert_content "$MNT/devices/hub1/other" $'[true]\n'
	[ "$(stat -c %s "$MNT/devices/hub1/other")" = 7 ]
	remount_dsfs
	assert_content "$MNT/devices/hub1/cfg" $'{"t":21}\n'
	assert_content "$MNT/kv/__hub1/other" $'[true]\n'
}

@test "kv/__ID/ made through kv/ shows as devices/ID/" {
	mount_dsfs
	mkdir -p "$MNT/kv/__sensor-7/sub"
	echo 3 >"$MNT/kv/__sensor-7/sub/k"
	[ "$(ls1 "$MNT/devices")" = sensor-7 ]
	assert_content "$MNT/devices/sensor-7/sub/k" $'3\n'
	mkdir -p "$MNT/devices/hub2/deep/er"
	echo '"d"' >"$MNT/devices/hub2/deep/er/v"
	assert_content "$MNT/kv/__hub2/deep/er/v" $'"d"\n'
}

@test "devices/ lists only the IDs of __ directories" {
	mount_dsfs
	mkdir "$MNT/kv/plain" "$MNT/kv/__a" "$MNT/kv/_b" "$MNT/kv/__c"
	echo 1 >"$MNT/kv/__file"
	echo 1 >"$MNT/kv/x"
	mkdir "$MNT/kv/plain/__nested"
	[ "$(ls1 "$MNT/devices")" = "$(printf '%s\n' a c)" ]
	[ ! -e "$MNT/devices/plain" ]
	[ ! -e "$MNT/devices/file" ]
	[ ! -e "$MNT/devices/x" ]
	[ ! -e "$MNT/devices/nested" ]
}

@test "values under devices/ are validated as JSON" {
	mount_dsfs
	mkdir "$MNT/devices/hub1"
	echo '{"t": 20}' >"$MNT/devices/hub1/cfg"
	run tmo bash -c "echo '{\"t\": }' >'$MNT/devices/hub1/cfg'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Invalid argument"* ]]
	assert_content "$MNT/devices/hub1/cfg" $'{"t": 20}\n'
	run tmo "$PYTHON" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"{\"t\": ")
try:
    os.close(fd)
except OSError as e:
    print("close errno", e.errno)
' "$MNT/devices/hub1/cfg"
	[ "$output" = "close errno 22" ]
	assert_content "$MNT/devices/hub1/cfg" $'{"t": 20}\n'
	assert_content "$MNT/kv/__hub1/cfg" $'{"t": 20}\n'
	touch "$MNT/devices/hub1/empty"
	[ "$(xattr "$MNT/devices/hub1/empty" user.dsfs.type)" = empty ]
}

@test "rm -r devices/hub1 removes kv/__hub1" {
	mount_dsfs
	mkdir -p "$MNT/devices/hub1/sub"
	echo 1 >"$MNT/devices/hub1/sub/a"
	echo 2 >"$MNT/devices/hub1/b"
	assert_errno rmdir "$MNT/devices/hub1" ENOTEMPTY
	rm -r "$MNT/devices/hub1"
	[ ! -e "$MNT/devices/hub1" ]
	[ ! -e "$MNT/kv/__hub1" ]
	[ -z "$(ls -A "$MNT/devices")" ]
	[ -z "$(ls -A "$MNT/kv")" ]
	remount_dsfs
	[ ! -e "$MNT/kv/__hub1" ]
}

@test "rm -r kv/__hub1 removes devices/hub1" {
	mount_dsfs
	mkdir "$MNT/devices/hub1"
	echo 1 >"$MNT/devices/hub1/a"
	rm -r "$MNT/kv/__hub1"
	[ ! -e "$MNT/devices/hub1" ]
	[ -z "$(ls -A "$MNT/devices")" ]
}

@test "factory devices show in devices/ and kv/__ID/; a write copies up" {
	mkdir -p "$T/f/devices/hub1" "$T/f/kv"
	echo '{"t": 20}' >"$T/f/devices/hub1/cfg"
	echo 1 >"$T/f/kv/k"
	make_factory "$T/f"
	mount_dsfs
	[ "$(ls1 "$MNT/devices")" = hub1 ]
	assert_content "$MNT/devices/hub1/cfg" $'{"t": 20}\n'
	assert_content "$MNT/kv/__hub1/cfg" $'{"t": 20}\n'
	assert_content "$MNT/factory/devices/hub1/cfg" $'{"t": 20}\n'
	[ "$(xattr "$MNT/devices/hub1/cfg" user.dsfs.layer)" = factory ]
	echo '{"t": 22}' >"$MNT/devices/hub1/cfg"
	assert_content "$MNT/kv/__hub1/cfg" $'{"t": 22}\n'
	assert_content "$MNT/runtime/devices/hub1/cfg" $'{"t": 22}\n'
	assert_content "$MNT/runtime/kv/__hub1/cfg" $'{"t": 22}\n'
	assert_content "$MNT/factory/devices/hub1/cfg" $'{"t": 20}\n'
	[ "$(xattr "$MNT/devices/hub1/cfg" user.dsfs.layer)" = runtime ]
	# Revert.
	rm "$MNT/runtime/devices/hub1/cfg"
	assert_content "$MNT/devices/hub1/cfg" $'{"t": 20}\n'
	# Remove through devices/: gone from both views.
	rm -r "$MNT/devices/hub1"
	[ ! -e "$MNT/devices/hub1" ]
	[ ! -e "$MNT/kv/__hub1" ]
	[ -d "$MNT/factory/devices/hub1" ]
}

@test "ephemeral/devices/ID is ephemeral/kv/__ID and shows first in devices/" {
	mount_dsfs
	mkdir "$MNT/devices/d1"
	echo '"runtime"' >"$MNT/devices/d1/v"
	mkdir "$MNT/ephemeral/devices/d1"
	echo '"ephemeral"' >"$MNT/ephemeral/devices/d1/v"
	assert_content "$MNT/ephemeral/kv/__d1/v" $'"ephemeral"\n'
	assert_content "$MNT/devices/d1/v" $'"ephemeral"\n'
	assert_content "$MNT/kv/__d1/v" $'"ephemeral"\n'
	remount_dsfs
	assert_content "$MNT/devices/d1/v" $'"runtime"\n'
}

@test "devices/: bad names, EXDEV to kv/, EPERM for links" {
	mount_dsfs
	local n256
	n256=$(printf 'z%.0s' $(seq 256))
	assert_errno mkdir "$MNT/devices/"$'\xff' EINVAL
	assert_errno mkdir "$MNT/devices/$n256" ENAMETOOLONG
	mkdir "$MNT/devices/hub1"
	echo 1 >"$MNT/devices/hub1/y"
	assert_errno rename "$MNT/devices/hub1/y" "$MNT/kv/z" EXDEV
	assert_errno symlink y "$MNT/devices/hub1/l" EPERM
	assert_errno mkfifo "$MNT/devices/hub1/f" EPERM
	assert_content "$MNT/devices/hub1/y" $'1\n'
}

@test "renaming within devices/ works and shows in kv/" {
	mount_dsfs
	mkdir "$MNT/devices/hub1"
	echo 1 >"$MNT/devices/hub1/a"
	assert_errno rename "$MNT/devices/hub1/a" "$MNT/devices/hub1/b" OK
	assert_content "$MNT/kv/__hub1/b" $'1\n'
	[ ! -e "$MNT/kv/__hub1/a" ]
	assert_errno rename "$MNT/devices/hub1" "$MNT/devices/hub2" OK
	[ "$(ls1 "$MNT/devices")" = hub2 ]
	[ -d "$MNT/kv/__hub2" ]
	[ ! -e "$MNT/kv/__hub1" ]
	assert_content "$MNT/devices/hub2/b" $'1\n'
}
