#!/usr/bin/env bats
# overlay.bats - the layers: reads through kv/ find ephemeral, then runtime,
# then factory; writes go where the entry was found if writable, else to
# runtime (copy-up); removal through kv/ leaves a whiteout over a factory
# entry; removal from runtime/ reverts to the factory default; factory/ is
# read-only; renames across trees or layers are EXDEV.

load helpers

setup()
{
	setup_store
	F=$T/factory-src
	mkdir -p "$F/kv/app" "$F/kv/empty" "$F/devices/hub1"
	printf '"hello"\n' >"$F/kv/greeting"
	printf '{"volume": 5}\n' >"$F/kv/settings"
	printf '"demo"\n' >"$F/kv/app/name"
	printf '1\n' >"$F/kv/app/ver"
	printf '{"t": 20}\n' >"$F/devices/hub1/cfg"
}

teardown()
{
	teardown_store
}

# Builds the factory image from $F and mounts.
mount_with_factory()
{
	make_factory "$F" && mount_dsfs
}

@test "factory values show in kv/ and factory/kv/, layer factory" {
	mount_with_factory
	# kv/__hub1 is the factory's devices/hub1.
	[ "$(ls1 "$MNT/kv")" = "$(printf '%s\n' __hub1 app empty greeting settings)" ]
	[ "$(ls1 "$MNT/factory/kv")" = "$(printf '%s\n' __hub1 app empty greeting settings)" ]
	[ "$(ls1 "$MNT/kv/app")" = "$(printf '%s\n' name ver)" ]
	assert_content "$MNT/kv/greeting" $'"hello"\n'
	assert_content "$MNT/factory/kv/settings" $'{"volume": 5}\n'
	assert_content "$MNT/kv/app/name" $'"demo"\n'
	[ "$(xattr "$MNT/kv/greeting" user.dsfs.layer)" = factory ]
	[ "$(xattr "$MNT/kv/app" user.dsfs.layer)" = factory ]
	[ -z "$(ls -A "$MNT/runtime/kv")" ]
	[ -z "$(ls -A "$MNT/ephemeral/kv")" ]
}

@test "no factory image: the factory layer is empty and still read-only" {
	mount_dsfs
	[ ! -e "$STORE/factory.db" ]
	[ -z "$(ls -A "$MNT/factory/kv")" ]
	assert_errno create "$MNT/factory/kv/x" EROFS
	assert_errno mkdir "$MNT/factory/kv/d" EROFS
}

@test "writing a factory value through kv/ copies it up to runtime" {
	mount_with_factory
	echo '{"volume": 7}' >"$MNT/kv/settings"
	assert_content "$MNT/kv/settings" $'{"volume": 7}\n'
	assert_content "$MNT/runtime/kv/settings" $'{"volume": 7}\n'
	assert_content "$MNT/factory/kv/settings" $'{"volume": 5}\n'
	[ "$(xattr "$MNT/kv/settings" user.dsfs.layer)" = runtime ]
	[ "$(ls1 "$MNT/runtime/kv")" = settings ]
	[ -z "$(ls -A "$MNT/ephemeral/kv")" ]
	# Inside a factory directory too.
	echo '"renamed"' >"$MNT/kv/app/name"
	assert_content "$MNT/runtime/kv/app/name" $'"renamed"\n'
	assert_content "$MNT/factory/kv/app/name" $'"demo"\n'
	[ "$(ls1 "$MNT/kv/app")" = "$(printf '%s\n' name ver)" ]
	remount_dsfs
	assert_content "$MNT/kv/settings" $'{"volume": 7}\n'
	assert_content "$MNT/kv/app/name" $'"renamed"\n'
	assert_content "$MNT/kv/app/ver" $'1\n'
}

@test "a new entry through kv/ goes to runtime" {
	mount_with_factory
	echo '[1]' >"$MNT/kv/new"
	mkdir "$MNT/kv/ns"
	echo 2 >"$MNT/kv/ns/k"
	assert_content "$MNT/runtime/kv/new" $'[1]\n'
	assert_content "$MNT/runtime/kv/ns/k" $'2\n'
	[ "$(xattr "$MNT/kv/new" user.dsfs.layer)" = runtime ]
	[ -z "$(ls -A "$MNT/ephemeral/kv")" ]
	[ ! -e "$MNT/factory/kv/new" ]
}

@test "a merged listing is the union of the layers, without duplicates" {
	mount_with_factory
	echo 1 >"$MNT/ephemeral/kv/e"
	echo 2 >"$MNT/runtime/kv/r"
	echo 3 >"$MNT/kv/greeting"
	echo 4 >"$MNT/ephemeral/kv/greeting"
	echo 5 >"$MNT/ephemeral/kv/settings"
	mkdir "$MNT/ephemeral/kv/app"
	echo 6 >"$MNT/ephemeral/kv/app/eph"
	[ "$(ls1 "$MNT/kv")" = "$(printf '%s\n' __hub1 app e empty greeting r settings)" ]
	[ "$(ls1 "$MNT/kv/app")" = "$(printf '%s\n' eph name ver)" ]
	[ "$(ls "$MNT/kv" | sort | uniq -d)" = "" ]
	assert_content "$MNT/kv/greeting" $'4\n'
	assert_content "$MNT/kv/settings" $'5\n'
}

@test "ephemeral/kv/x shows first in kv/x and is gone after remount" {
	mount_with_factory
	echo '"runtime"' >"$MNT/kv/greeting"
	assert_content "$MNT/kv/greeting" $'"runtime"\n'
	echo '"ephemeral"' >"$MNT/ephemeral/kv/greeting"
	assert_content "$MNT/kv/greeting" $'"ephemeral"\n'
	[ "$(xattr "$MNT/kv/greeting" user.dsfs.layer)" = ephemeral ]
	echo '"only ephemeral"' >"$MNT/ephemeral/kv/tmp"
	assert_content "$MNT/kv/tmp" $'"only ephemeral"\n'
	remount_dsfs
	assert_content "$MNT/kv/greeting" $'"runtime"\n'
	[ "$(xattr "$MNT/kv/greeting" user.dsfs.layer)" = runtime ]
	[ ! -e "$MNT/kv/tmp" ]
	[ -z "$(ls -A "$MNT/ephemeral/kv")" ]
}

@test "a write through kv/ to an entry found in ephemeral stays in ephemeral" {
	mount_with_factory
	echo '"r"' >"$MNT/runtime/kv/greeting"
	echo '"e"' >"$MNT/ephemeral/kv/greeting"
	echo '"new"' >"$MNT/kv/greeting"
	assert_content "$MNT/ephemeral/kv/greeting" $'"new"\n'
	assert_content "$MNT/runtime/kv/greeting" $'"r"\n'
	assert_content "$MNT/factory/kv/greeting" $'"hello"\n'
	[ "$(xattr "$MNT/kv/greeting" user.dsfs.layer)" = ephemeral ]
	remount_dsfs
	assert_content "$MNT/kv/greeting" $'"r"\n'
}

@test "a write through kv/ to an entry found in runtime stays in runtime" {
	mount_with_factory
	echo '"r"' >"$MNT/runtime/kv/x"
	echo '"new"' >"$MNT/kv/x"
	assert_content "$MNT/runtime/kv/x" $'"new"\n'
	[ ! -e "$MNT/ephemeral/kv/x" ]
}

@test "rm kv/x of a factory entry hides it with a whiteout that runtime/kv does not show" {
	mount_with_factory
	rm "$MNT/kv/greeting"
	[ ! -e "$MNT/kv/greeting" ]
	assert_errno read "$MNT/kv/greeting" ENOENT
	[ "$(ls1 "$MNT/kv")" = "$(printf '%s\n' __hub1 app empty settings)" ]
	[ -z "$(ls -A "$MNT/runtime/kv")" ]
	assert_content "$MNT/factory/kv/greeting" $'"hello"\n'
	remount_dsfs
	[ ! -e "$MNT/kv/greeting" ]
	[ "$(ls1 "$MNT/kv")" = "$(printf '%s\n' __hub1 app empty settings)" ]
	[ -z "$(ls -A "$MNT/runtime/kv")" ]
	# Writing it again makes a new runtime value.
	echo '"again"' >"$MNT/kv/greeting"
	assert_content "$MNT/kv/greeting" $'"again"\n'
	assert_content "$MNT/runtime/kv/greeting" $'"again"\n'
	[ "$(xattr "$MNT/kv/greeting" user.dsfs.layer)" = runtime ]
}

@test "rm kv/x removes it from ephemeral and runtime and hides the factory value" {
	mount_with_factory
	echo '"r"' >"$MNT/runtime/kv/settings"
	echo '"e"' >"$MNT/ephemeral/kv/settings"
	echo '"r2"' >"$MNT/runtime/kv/other"
	echo '"e2"' >"$MNT/ephemeral/kv/other"
	rm "$MNT/kv/settings" "$MNT/kv/other"
	[ ! -e "$MNT/kv/settings" ]
	[ ! -e "$MNT/kv/other" ]
	[ ! -e "$MNT/ephemeral/kv/settings" ]
	[ ! -e "$MNT/runtime/kv/settings" ]
	[ ! -e "$MNT/ephemeral/kv/other" ]
	[ ! -e "$MNT/runtime/kv/other" ]
	assert_content "$MNT/factory/kv/settings" $'{"volume": 5}\n'
	remount_dsfs
	[ ! -e "$MNT/kv/settings" ]
	[ ! -e "$MNT/kv/other" ]
}

@test "rm runtime/kv/x reverts kv/x to the factory default" {
	mount_with_factory
	echo '{"volume": 9}' >"$MNT/kv/settings"
	assert_content "$MNT/kv/settings" $'{"volume": 9}\n'
	rm "$MNT/runtime/kv/settings"
	assert_content "$MNT/kv/settings" $'{"volume": 5}\n'
	[ "$(xattr "$MNT/kv/settings" user.dsfs.layer)" = factory ]
	[ -z "$(ls -A "$MNT/runtime/kv")" ]
	remount_dsfs
	assert_content "$MNT/kv/settings" $'{"volume": 5}\n'
}

@test "rm -r kv/dir of a factory directory hides it; mkdir again gives an empty directory" {
	mount_with_factory
	assert_errno rmdir "$MNT/kv/app" ENOTEMPTY
	rm -r "$MNT/kv/app"
	[ ! -e "$MNT/kv/app" ]
	[ "$(ls1 "$MNT/kv")" = "$(printf '%s\n' __hub1 empty greeting settings)" ]
	[ "$(ls1 "$MNT/factory/kv/app")" = "$(printf '%s\n' name ver)" ]
	mkdir "$MNT/kv/app"
	[ -d "$MNT/kv/app" ]
	[ -z "$(ls -A "$MNT/kv/app")" ]
	[ ! -e "$MNT/kv/app/name" ]
	echo 1 >"$MNT/kv/app/fresh"
	[ "$(ls1 "$MNT/kv/app")" = fresh ]
	remount_dsfs
	[ "$(ls1 "$MNT/kv/app")" = fresh ]
	[ ! -e "$MNT/kv/app/name" ]
	assert_content "$MNT/factory/kv/app/name" $'"demo"\n'
}

@test "an empty factory directory can be removed with rmdir" {
	mount_with_factory
	rmdir "$MNT/kv/empty"
	[ ! -e "$MNT/kv/empty" ]
	[ -d "$MNT/factory/kv/empty" ]
	remount_dsfs
	[ ! -e "$MNT/kv/empty" ]
}

@test "writes under factory/ fail with EROFS" {
	mount_with_factory
	assert_errno create "$MNT/factory/kv/new" EROFS
	assert_errno write "$MNT/factory/kv/greeting" '"x"' EROFS
	assert_errno open_wronly "$MNT/factory/kv/greeting" EROFS
	assert_errno unlink "$MNT/factory/kv/greeting" EROFS
	assert_errno mkdir "$MNT/factory/kv/d" EROFS
	assert_errno rmdir "$MNT/factory/kv/empty" EROFS
	assert_errno rename "$MNT/factory/kv/greeting" "$MNT/factory/kv/g2" EROFS
	assert_errno chmod "$MNT/factory/kv/greeting" 600 EROFS
	assert_errno chown "$MNT/factory/kv/greeting" 1 1 EROFS
	assert_errno utime "$MNT/factory/kv/greeting" 1000 EROFS
	assert_errno truncate "$MNT/factory/kv/greeting" 0 EROFS
	assert_errno write "$MNT/factory/devices/hub1/cfg" '{}' EROFS
	assert_errno mkdir "$MNT/factory/devices/hub2" EROFS
	run tmo touch "$MNT/factory/kv/new2"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	run tmo bash -c "echo 1 >'$MNT/factory/kv/greeting'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	run tmo rm "$MNT/factory/kv/greeting"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	run tmo mkdir "$MNT/factory/kv/d2"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	run tmo mv "$MNT/factory/kv/greeting" "$MNT/factory/kv/g3"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	run tmo chmod 600 "$MNT/factory/kv/greeting"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	# Nothing changed.
	[ "$(ls1 "$MNT/factory/kv")" = "$(printf '%s\n' __hub1 app empty greeting settings)" ]
	assert_content "$MNT/factory/kv/greeting" $'"hello"\n'
	[ "$(stat -c %a "$MNT/factory/kv/greeting")" != 600 ]
	[ -z "$(ls -A "$MNT/runtime/kv")" ]
}

@test "renaming a factory directory through kv/ is EXDEV; mv still moves it" {
	mount_with_factory
	assert_errno rename "$MNT/kv/app" "$MNT/kv/app2" EXDEV
	[ -d "$MNT/kv/app" ]
	tmo mv "$MNT/kv/app" "$MNT/kv/app2"
	[ ! -e "$MNT/kv/app" ]
	[ "$(ls1 "$MNT/kv/app2")" = "$(printf '%s\n' name ver)" ]
	assert_content "$MNT/kv/app2/name" $'"demo"\n'
	assert_content "$MNT/kv/app2/ver" $'1\n'
	[ "$(ls1 "$MNT/factory/kv/app")" = "$(printf '%s\n' name ver)" ]
	remount_dsfs
	[ ! -e "$MNT/kv/app" ]
	assert_content "$MNT/kv/app2/name" $'"demo"\n'
}

@test "mv of a factory value within kv/ moves it" {
	mount_with_factory
	tmo mv "$MNT/kv/greeting" "$MNT/kv/hello"
	[ ! -e "$MNT/kv/greeting" ]
	assert_content "$MNT/kv/hello" $'"hello"\n'
	assert_content "$MNT/factory/kv/greeting" $'"hello"\n'
	remount_dsfs
	[ ! -e "$MNT/kv/greeting" ]
	assert_content "$MNT/kv/hello" $'"hello"\n'
}

@test "rename between trees or layers is EXDEV; mv copies" {
	mount_with_factory
	echo '{"a": 1}' >"$MNT/kv/x"
	mkdir -p "$MNT/devices/hub9"
	echo '{"b": 2}' >"$MNT/devices/hub9/y"
	echo '"e"' >"$MNT/ephemeral/kv/e"
	assert_errno rename "$MNT/kv/x" "$MNT/images/x" EXDEV
	assert_errno rename "$MNT/kv/x" "$MNT/runtime/kv/x2" EXDEV
	assert_errno rename "$MNT/runtime/kv/x" "$MNT/ephemeral/kv/x" EXDEV
	assert_errno rename "$MNT/ephemeral/kv/e" "$MNT/runtime/kv/e" EXDEV
	assert_errno rename "$MNT/devices/hub9/y" "$MNT/kv/z" EXDEV
	assert_errno rename "$MNT/kv/x" "$MNT/devices/hub9/x" EXDEV
	# Out of factory/: a write there (EROFS) or across layers (EXDEV).
	run pyop rename "$MNT/factory/kv/greeting" "$MNT/kv/g"
	[ "$output" = EXDEV ] || [ "$output" = EROFS ] ||
		fail "rename out of factory/: $output"
	# Nothing moved.
	assert_content "$MNT/kv/x" $'{"a": 1}\n'
	assert_content "$MNT/devices/hub9/y" $'{"b": 2}\n'
	[ ! -e "$MNT/kv/z" ]
	# mv falls back to copy and remove.
	tmo mv "$MNT/devices/hub9/y" "$MNT/kv/z"
	assert_content "$MNT/kv/z" $'{"b": 2}\n'
	[ ! -e "$MNT/devices/hub9/y" ]
	# From one layer to another.  (Not "mv kv/x ephemeral/kv/x": its
	# final unlink of kv/x would remove the new ephemeral copy too, as
	# removal through kv/ removes from every writable layer.)
	tmo mv "$MNT/runtime/kv/x" "$MNT/ephemeral/kv/x"
	assert_content "$MNT/ephemeral/kv/x" $'{"a": 1}\n'
	[ ! -e "$MNT/runtime/kv/x" ]
	assert_content "$MNT/kv/x" $'{"a": 1}\n'
	[ "$(xattr "$MNT/kv/x" user.dsfs.layer)" = ephemeral ]
}

@test "layer xattr follows the entry through copy-up, ephemeral, revert" {
	mount_with_factory
	local v1 v2 v3
	[ "$(xattr "$MNT/kv/settings" user.dsfs.layer)" = factory ]
	v1=$(xattr "$MNT/kv/settings" user.dsfs.version)
	echo '{"volume": 6}' >"$MNT/kv/settings"
	[ "$(xattr "$MNT/kv/settings" user.dsfs.layer)" = runtime ]
	v2=$(xattr "$MNT/kv/settings" user.dsfs.version)
	[[ "$v1" =~ ^[0-9]+$ ]]
	[[ "$v2" =~ ^[0-9]+$ ]]
	[ "$v2" -gt "$v1" ]
	echo '{"volume": 0}' >"$MNT/ephemeral/kv/settings"
	[ "$(xattr "$MNT/kv/settings" user.dsfs.layer)" = ephemeral ]
	rm "$MNT/ephemeral/kv/settings"
	[ "$(xattr "$MNT/kv/settings" user.dsfs.layer)" = runtime ]
	assert_content "$MNT/kv/settings" $'{"volume": 6}\n'
	rm "$MNT/runtime/kv/settings"
	[ "$(xattr "$MNT/kv/settings" user.dsfs.layer)" = factory ]
	v3=$(xattr "$MNT/factory/kv/settings" user.dsfs.layer)
	[ "$v3" = factory ]
}
