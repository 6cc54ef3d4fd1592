#!/usr/bin/env bats
# capacity.bats - each layer's byte budget (value bytes plus name bytes):
# a change over budget fails with ENOSPC (a value at the write that goes
# over) and changes nothing; statfs (df)
# reports the budget of the layer of the tree, runtime's on the merged
# trees, in blocks of 4096 bytes.

load helpers

setup()
{
	setup_store
}

teardown()
{
	teardown_store
}

# json_string FILE N: writes a JSON string of N bytes in all (quotes
# included) to FILE.
json_string()
{
	"$PYTHON" -c 'import sys; n = int(sys.argv[1]); sys.stdout.write("\"" + "x" * (n - 2) + "\"")' "$2" >"$1"
}

# expect_enospc STEPS: STEPS (from pyop write_steps) shows ENOSPC at the
# write that went over the budget (each writer holds what its value will
# need as it writes, so the write itself is refused, not only the close).
expect_enospc()
{
	case $1 in
	write=ENOSPC*) ;;
	*) fail "expected ENOSPC at the write, got: $1" ;;
	esac
}

@test "a value over the runtime budget is refused with ENOSPC; the old value stays" {
	mount_dsfs -o runtime_size=16K
	echo '"old"' >"$MNT/kv/x"
	json_string "$T/big" 20000
	expect_enospc "$(pyop write_steps "$MNT/kv/x" "$(cat "$T/big")")"
	assert_content "$MNT/kv/x" $'"old"\n'
	run tmo cp "$T/big" "$MNT/kv/x"
	[ "$status" -ne 0 ]
	[[ "$output" == *"No space left on device"* ]]
	assert_content "$MNT/kv/x" $'"old"\n'
	remount_dsfs -o runtime_size=16K
	assert_content "$MNT/kv/x" $'"old"\n'
}

@test "the budget is shared: values that fit alone do not fit together" {
	mount_dsfs -o runtime_size=16K
	json_string "$T/a" 15000
	json_string "$T/b" 1500
	tmo cp "$T/a" "$MNT/kv/a"
	tmo cmp "$T/a" "$MNT/kv/a"
	expect_enospc "$(pyop write_steps "$MNT/kv/b" "$(cat "$T/b")")"
	assert_content "$MNT/kv/a" "$(cat "$T/a")"
	# Removing a frees its bytes.
	rm "$MNT/kv/a"
	rm -f "$MNT/kv/b"
	tmo cp "$T/b" "$MNT/kv/b"
	tmo cmp "$T/b" "$MNT/kv/b"
}

@test "replacing a value counts only the new value" {
	mount_dsfs -o runtime_size=16K
	json_string "$T/a" 12000
	json_string "$T/a2" 13000
	tmo cp "$T/a" "$MNT/kv/a"
	tmo cp "$T/a2" "$MNT/kv/a"
	tmo cmp "$T/a2" "$MNT/kv/a"
	tmo cp "$T/a" "$MNT/kv/a"
	tmo cmp "$T/a" "$MNT/kv/a"
}

@test "names count against the budget" {
	mount_dsfs -o runtime_size=8K
	local i name got=
	# 100 empty values with 200-byte names are 20000 bytes of names.
	for i in $(seq 100); do
		name=$(printf "%03d%0197d" "$i" 0)
		got=$(pyop create "$MNT/kv/$name")
		[ "$got" = OK ] || break
	done
	[ "$got" = ENOSPC ] || fail "creating long names never hit ENOSPC (last: $got)"
	[ "$i" -gt 5 ] || fail "ENOSPC came too early, at name $i"
	[ "$i" -le 42 ] || fail "ENOSPC came only at name $i: names are not counted"
	# Directories too, and nothing is made by the refused mkdir.
	name=$(printf 'd%0254d' 0)
	assert_errno mkdir "$MNT/kv/$name" ENOSPC
	[ ! -e "$MNT/kv/$name" ]
}

@test "cp -r over budget: what fits is copied, the rest is refused with ENOSPC" {
	mount_dsfs -o runtime_size=16K
	mkdir -p "$T/src/d"
	json_string "$T/src/d/v1" 6000
	json_string "$T/src/d/v2" 6000
	json_string "$T/src/d/v3" 6000
	echo '"keep"' >"$MNT/kv/keep"
	run tmo cp -r "$T/src/d" "$MNT/kv/"
	[ "$status" -ne 0 ]
	[[ "$output" == *"No space left on device"* ]]
	assert_content "$MNT/kv/keep" $'"keep"\n'
	# cp copies in the source directory's order: two of the three fit,
	# the third is missing or an empty entry.
	local v whole=0 refused=0
	for v in v1 v2 v3; do
		if tmo cmp -s "$T/src/d/$v" "$MNT/kv/d/$v"; then
			whole=$((whole + 1))
		elif [ ! -e "$MNT/kv/d/$v" ] || [ ! -s "$MNT/kv/d/$v" ]; then
			refused=$((refused + 1))
		fi
	done
	[ $whole -eq 2 ] && [ $refused -eq 1 ] ||
		fail "expected 2 values copied whole and 1 refused: $whole whole, $refused refused"
}

@test "the ephemeral layer has its own budget" {
	mount_dsfs -o ephemeral_size=16K,runtime_size=64K
	json_string "$T/big" 20000
	expect_enospc "$(pyop write_steps "$MNT/ephemeral/kv/x" "$(cat "$T/big")")"
	run tmo cp "$T/big" "$MNT/ephemeral/kv/y"
	[ "$status" -ne 0 ]
	[[ "$output" == *"No space left on device"* ]]
	# The same value fits in runtime.  (The refused writes above left
	# empty entries ephemeral/kv/x and y behind, which kv/x and y would
	# find first.)
	tmo cp "$T/big" "$MNT/kv/z"
	tmo cmp "$T/big" "$MNT/kv/z"
	tmo cmp "$T/big" "$MNT/runtime/kv/z"
}

@test "a write through kv/ to an ephemeral entry counts against ephemeral" {
	mount_dsfs -o ephemeral_size=64K,runtime_size=16K
	echo 1 >"$MNT/ephemeral/kv/x"
	json_string "$T/big" 20000
	tmo cp "$T/big" "$MNT/kv/x"
	tmo cmp "$T/big" "$MNT/ephemeral/kv/x"
	[ ! -e "$MNT/runtime/kv/x" ]
}

@test "statfs reports each layer's budget in blocks of 4096" {
	mount_dsfs -o runtime_size=1M,ephemeral_size=2M,factory_size=3M
	[ "$(stat -f -c %S "$MNT/runtime")" = 4096 ]
	[ "$(stat -f -c %b "$MNT/runtime")" = 256 ]
	[ "$(stat -f -c %b "$MNT/runtime/kv")" = 256 ]
	[ "$(stat -f -c %b "$MNT/ephemeral")" = 512 ]
	[ "$(stat -f -c %b "$MNT/ephemeral/kv")" = 512 ]
	[ "$(stat -f -c %b "$MNT/factory")" = 768 ]
	[ "$(stat -f -c %b "$MNT/kv")" = 256 ]
	[ "$(stat -f -c %b "$MNT/images")" = 256 ]
	[ "$(df -B 4096 --output=size "$MNT/runtime" | tail -1 | tr -d ' ')" = 256 ]
	[ "$(df -B 4096 --output=size "$MNT/ephemeral" | tail -1 | tr -d ' ')" = 512 ]
}

@test "statfs counts what is stored: free space falls as values are written" {
	mount_dsfs -o runtime_size=1M,ephemeral_size=2M
	local free0 free1 efree0 efree1
	free0=$(stat -f -c %f "$MNT/runtime")
	efree0=$(stat -f -c %f "$MNT/ephemeral")
	[ "$free0" -le 256 ] && [ "$free0" -gt 200 ]
	json_string "$T/big" 409600
	tmo cp "$T/big" "$MNT/kv/big"
	free1=$(stat -f -c %f "$MNT/runtime")
	[ "$free1" -le $((free0 - 100)) ] ||
		fail "runtime free blocks went from $free0 to $free1 after 400 KiB"
	[ "$(stat -f -c %f "$MNT/kv")" = "$free1" ]
	[ "$(stat -f -c %a "$MNT/runtime")" -le $((free0 - 100)) ]
	# The ephemeral layer did not change.
	[ "$(stat -f -c %f "$MNT/ephemeral")" = "$efree0" ]
	tmo cp "$T/big" "$MNT/ephemeral/kv/ebig"
	efree1=$(stat -f -c %f "$MNT/ephemeral")
	[ "$efree1" -le $((efree0 - 100)) ]
	[ "$(stat -f -c %f "$MNT/runtime")" = "$free1" ]
	rm "$MNT/kv/big"
	rm "$MNT/ephemeral/kv/ebig"
	[ "$(stat -f -c %f "$MNT/runtime")" -ge $((free1 + 100)) ]
	[ "$(stat -f -c %f "$MNT/ephemeral")" -ge $((efree1 + 100)) ]
}

@test "default budgets: runtime 13 MiB, ephemeral 128 MiB" {
	mount_dsfs
	[ "$(stat -f -c %b "$MNT/runtime")" = $((13 * 256)) ]
	[ "$(stat -f -c %b "$MNT/kv")" = $((13 * 256)) ]
	[ "$(stat -f -c %b "$MNT/ephemeral")" = $((128 * 256)) ]
}

@test "K, M and G suffixes are understood" {
	mount_dsfs -o runtime_size=64K,ephemeral_size=1G
	[ "$(stat -f -c %b "$MNT/runtime")" = 16 ]
	[ "$(stat -f -c %b "$MNT/ephemeral")" = $((1024 * 256)) ]
}
