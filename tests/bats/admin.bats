#!/usr/bin/env bats
# admin.bats - dsfsctl dump, load, diff and the selective factory reset,
# on an unmounted store and through the daemon of a mounted one (the same
# output either way), with hostile documents refused whole.

load helpers

setup()
{
	setup_store
	S=$T/src
	mkdir -p "$S/kv/wifi" "$S/kv/app" "$S/devices/cam"
	printf '"DE"\n' >"$S/kv/wifi/country"
	printf '{"ssid": "home"}\n' >"$S/kv/wifi/net"
	printf '1.50\n' >"$S/kv/app/n"
	: >"$S/kv/app/empty"
	printf '7\n' >"$S/devices/cam/level"
	make_factory "$S"
}

teardown()
{
	[ -z "${T:-}" ] || ! is_mounted "$T/mnt2" || fusermount3 -uz "$T/mnt2"
	teardown_store
}

ctl()
{
	tmo "$DSFSCTL" "$@" 3>&- 4>&-
}

# same_mounted CMD...: dsfsctl CMD STORE... prints the same and exits the
# same unmounted and mounted (through the daemon); leaves the store
# mounted.
same_mounted()
{
	local off on soff son
	unmount_dsfs
	off=$(ctl "$@" 2>&1) && soff=0 || soff=$?
	mount_dsfs
	on=$(ctl "$@" 2>&1) && son=0 || son=$?
	[ "$off" = "$on" ] && [ "$soff" = "$son" ] ||
		fail "unmounted ($soff): $off" "mounted ($son): $on"
}

@test "dump prints the merged kv/ tree as one JSON document, values exact" {
	run ctl dump "$STORE"
	[ "$status" -eq 0 ]
	[ "$output" = '{
  "__cam": {
    "level": 7
  },
  "app": {
    "empty": null,
    "n": 1.50
  },
  "wifi": {
    "country": "DE",
    "net": {"ssid": "home"}
  }
}' ]
	ctl dump "$STORE" | "$PYTHON" -c 'import json, sys; json.load(sys.stdin)'
	run ctl dump "$STORE" app/n
	[ "$output" = 1.50 ]
	run ctl dump "$STORE" nope
	[ "$status" -eq 1 ]
	[[ "$output" == *"kv/nope: No such file or directory"* ]]
	run ctl dump --layer bogus "$STORE"
	[ "$status" -eq 1 ]
}

@test "dump, diff and --dry-run: the same output mounted and unmounted" {
	mount_dsfs
	echo '"FR"' >"$MNT/kv/wifi/country"
	rm "$MNT/kv/app/n"
	mkdir "$MNT/kv/new"
	echo '[1]' >"$MNT/kv/new/list"
	# Scratch files are never in a dump or a diff.
	printf 'junk' >"$MNT/kv/new/.list.swp"
	same_mounted dump "$STORE"
	same_mounted dump --layer runtime "$STORE"
	same_mounted dump "$STORE" wifi
	same_mounted diff "$STORE"
	same_mounted diff --json "$STORE"
	same_mounted factory-reset --dry-run "$STORE"
	run ctl diff "$STORE"
	[ "$output" = 'removed kv/app/n runtime
added kv/new/ runtime
changed kv/wifi/country runtime' ]
	# The ephemeral layer shows only on a mount.
	echo '"e"' >"$MNT/ephemeral/kv/tmp"
	run ctl diff --json "$STORE"
	[[ "$output" == *'{"op":"added","path":"kv/tmp","kind":"file","layer":"ephemeral"}'* ]]
	ctl diff --json "$STORE" | "$PYTHON" -c '
import json, sys
for l in sys.stdin: json.loads(l)'
}

@test "load merges a document into the runtime layer; --replace replaces" {
	printf '{"wifi": {"country": "FR"}, "app": {"n": 2, "more": {"x": [1, 2.50]}}}' >"$T/doc.json"
	# A first mount records the store's runtime backend for dsfsctl.
	mount_dsfs
	unmount_dsfs
	ctl load "$STORE" "$T/doc.json"
	mount_dsfs
	assert_content "$MNT/kv/wifi/country" '"FR"'
	assert_content "$MNT/kv/wifi/net" $'{"ssid": "home"}\n'
	assert_content "$MNT/kv/app/more/x" '[1, 2.50]'
	[ "$(getfattr --only-values -n user.dsfs.layer "$MNT/kv/app/n")" = runtime ]
	# Mounted: through the daemon, seen by the mount at once.
	cat "$MNT/kv/wifi/country" >/dev/null
	echo '{"country": "IT"}' | ctl load "$STORE" - wifi
	assert_content "$MNT/kv/wifi/country" '"IT"'
	# --replace: what the document does not name goes (factory entries
	# are hidden by whiteouts).
	printf '{"wifi": {"country": "ES"}}' | ctl load --replace "$STORE" -
	[ "$(ls1 "$MNT/kv")" = wifi ]
	[ "$(ls1 "$MNT/kv/wifi")" = country ]
	[ ! -e "$MNT/devices/cam" ]
	# An object whose name is a file today stays a file.
	printf '{"wifi": {"country": {"code": "PT"}}}' | ctl load "$STORE" -
	assert_content "$MNT/kv/wifi/country" '{"code": "PT"}'
	remount_dsfs
	assert_content "$MNT/kv/wifi/country" '{"code": "PT"}'
	run ctl dump "$STORE"
	[ "$output" = '{
  "wifi": {
    "country": {"code": "PT"}
  }
}' ]
}

# refused DOC PATTERN: loading DOC fails with status 1 and a message
# matching PATTERN, and the store is as it was.
refused()
{
	local before after
	printf '%s' "$1" >"$T/bad.json"
	before=$(ctl dump "$STORE")
	run ctl load "$STORE" "$T/bad.json"
	echo "$output"
	[ "$status" -eq 1 ] || fail "status $status for $1"
	[[ "$output" == *$2* ]] || fail "no '$2' in: $output"
	after=$(ctl dump "$STORE")
	[ "$before" = "$after" ] || fail "the store changed"
}

@test "hostile documents are refused whole with a precise message" {
	refused '{"ok": 1, "a": 1, "a": 2}' 'byte 18: duplicate name "a"'
	refused '{"ok": 1, "a/b": 1}' "name holds a '/'"
	refused '{"": 1}' 'empty name'
	refused '{"..": 1}' "('.' or '..')"
	refused '{"\ud800": 1}' 'lone UTF-16 surrogate'
	refused $'{"\xff": 1}' 'not valid UTF-8'
	refused '{"a\u0000b": 1}' 'name holds a NUL'
	refused "{\"$(head -c 300 /dev/zero | tr '\0' x)\": 1}" 'longer than 255 bytes'
	refused '{"ok": 1, "x": {oops}}' 'byte 16: expected a member name'
	refused '{"ok": 1, "x": [1,]}' 'value of "x"'
	refused '{"ok": 1, ".x.swp": 1}' "scratch name"
	refused '[1]' 'must be an object'
	refused '{"a": 1} tail' 'data after the end'
	refused "$("$PYTHON" -c 'print("{\"a\":" * 300 + "1" + "}" * 300)')" 'nested too deep'
	refused '{"wifi": 5}' 'kv/wifi is a directory'
	# Over the runtime budget (13M by default): nothing at all is written.
	"$PYTHON" -c 'print("{\"small\": 1, \"big\": \"" + "x" * 14000000 + "\"}")' >"$T/big.json"
	run ctl load "$STORE" "$T/big.json"
	[ "$status" -eq 1 ]
	[[ "$output" == *"budget"*"nothing changed"* ]]
	run ctl dump "$STORE" small
	[ "$status" -eq 1 ]
	# Mounted, the same refusal, naming the user's file.
	mount_dsfs
	printf '{"a": 1, "a": 2}' >"$T/dup.json"
	run ctl load "$STORE" "$T/dup.json"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/dup.json: byte 9: duplicate name"* ]]
}

@test "factory-reset --prefix --keep takes back only that, in one go" {
	mount_dsfs
	echo '"FR"' >"$MNT/kv/wifi/country"
	echo '{"ssid": "work"}' >"$MNT/kv/wifi/net"
	echo '"mine"' >"$MNT/kv/wifi/extra"
	echo 3 >"$MNT/kv/app/n"
	echo '"e"' >"$MNT/ephemeral/kv/wifi/tmp" 2>/dev/null ||
		{ mkdir "$MNT/ephemeral/kv/wifi" && echo '"e"' >"$MNT/ephemeral/kv/wifi/tmp"; }
	run ctl factory-reset --dry-run --prefix wifi --keep wifi/net "$STORE"
	[ "$output" = 'changed kv/wifi/country runtime
added kv/wifi/extra runtime
added kv/wifi/tmp ephemeral' ]
	# --dry-run changed nothing.
	assert_content "$MNT/kv/wifi/country" $'"FR"\n'
	cat "$MNT/kv/wifi/extra" >/dev/null
	ctl factory-reset --prefix wifi --keep wifi/net "$STORE"
	# The mount shows it at once (its caches were dropped).
	assert_content "$MNT/kv/wifi/country" $'"DE"\n'
	[ ! -e "$MNT/kv/wifi/extra" ]
	[ ! -e "$MNT/kv/wifi/tmp" ]
	assert_content "$MNT/kv/wifi/net" $'{"ssid": "work"}\n'
	assert_content "$MNT/kv/app/n" $'3\n'
	run ctl diff "$STORE"
	[ "$output" = 'changed kv/app/n runtime
changed kv/wifi/net runtime' ]
	# Offline too.
	unmount_dsfs
	ctl factory-reset --keep app "$STORE"
	run ctl diff "$STORE"
	[ "$output" = 'changed kv/app/n runtime' ]
}

# tree_of DIR: every entry below the mount's trees with its kind, mode,
# owner, group, mtime and size, and every value's checksum.
tree_of()
{
	(cd "$1" && find kv images factory/* runtime/* -mindepth 1 \
		-printf '%p %y %m %U %G %T@ %s\n' | sort &&
		find kv images -type f -exec sha256sum {} + | sort)
}

@test "dump --archive and load --archive: a new store with the same tree" {
	PNG='\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\1\0\0\0\1\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\0\x05\x18\xd8N\0\0\0\0IEND\xaeB`\x82'
	mount_dsfs
	printf "$PNG" >"$MNT/images/a"
	printf "$PNG" >"$MNT/images/b"
	echo '"FR"' >"$MNT/kv/wifi/country"
	chmod 600 "$MNT/kv/wifi/country"
	chown nobody "$MNT/kv/app/n" 2>/dev/null || true
	touch -d '2001-02-03 04:05:06.123456789' "$MNT/kv/wifi/net"
	rm "$MNT/kv/app/empty"
	mkdir "$MNT/kv/fresh"
	rm -r "$MNT/devices/cam"
	mkdir "$MNT/devices/cam"
	# Mounted and unmounted, the same archive.
	ctl dump --archive "$STORE" >"$T/a1"
	unmount_dsfs
	ctl dump --archive "$STORE" >"$T/a1.off"
	cmp "$T/a1" "$T/a1.off"
	[ "$(head -1 "$T/a1")" = "dsfs-archive 1" ]
	# One blob for the two images.
	[ "$(grep -c '^{"t":"b"' "$T/a1")" -eq 1 ]
	ctl load --archive "$T/new" "$T/a1"
	ctl dump --archive "$T/new" >"$T/a2"
	cmp "$T/a1" "$T/a2"
	mount_dsfs
	tree_of "$MNT" >"$T/tree1"
	mkdir "$T/mnt2"
	tmo "$DSFS" "$T/new" "$T/mnt2" </dev/null 3>&- 4>&-
	tree_of "$T/mnt2" >"$T/tree2"
	fusermount3 -u "$T/mnt2"
	diff "$T/tree1" "$T/tree2"
	! grep -q "^kv/app/empty" "$T/tree1" || fail "the whiteout did not hide kv/app/empty"
	# Over an existing store: its runtime layer becomes the archive's.
	unmount_dsfs
	echo '{"junk": 1}' | ctl load "$T/new" -
	ctl load --archive "$T/new" "$T/a1"
	ctl dump --archive "$T/new" >"$T/a3"
	cmp "$T/a1" "$T/a3"
}

@test "a damaged or truncated archive is refused whole" {
	mount_dsfs
	echo '"FR"' >"$MNT/kv/wifi/country"
	unmount_dsfs
	ctl dump --archive "$STORE" >"$T/a"
	echo '{"keep": 1}' | ctl load "$T/dst" -
	before=$(ctl dump --archive "$T/dst")
	head -c -3 "$T/a" >"$T/trunc"
	run ctl load --archive "$T/dst" "$T/trunc"
	[ "$status" -eq 1 ]
	[[ "$output" == *"truncated"*"nothing changed"* ]]
	head -c 500 "$T/a" >"$T/short"
	run ctl load --archive "$T/dst" "$T/short"
	[ "$status" -eq 1 ]
	sed 's/"FR"/"XX"/' "$T/a" >"$T/damaged"
	run ctl load --archive "$T/dst" "$T/damaged"
	[ "$status" -eq 1 ]
	[[ "$output" == *"checksum mismatch"* ]]
	echo 'hello' >"$T/foreign"
	run ctl load --archive "$T/dst" "$T/foreign"
	[ "$status" -eq 1 ]
	[[ "$output" == *"not a dsfs archive"* ]]
	[ "$(ctl dump --archive "$T/dst")" = "$before" ]
	[ ! -e "$T/dst/factory.db" ]
	# Nor into a mounted store, through its daemon.
	mount_dsfs
	before=$(ctl dump --archive "$STORE")
	run ctl load --archive "$STORE" "$T/damaged"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/damaged: byte "*"checksum mismatch"*"nothing changed"* ]]
	[ "$(ctl dump --archive "$STORE")" = "$before" ]
	[ ! -e "$STORE/factory.db.new" ]
	ls "$STORE" | grep -q '^admin\.' && fail "left behind: $(ls "$STORE")"
	true
}

@test "load --archive into a mounted store: the same tree, shown at once" {
	PNG='\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\1\0\0\0\1\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\0\x05\x18\xd8N\0\0\0\0IEND\xaeB`\x82'
	mount_dsfs
	printf "$PNG" >"$MNT/images/a"
	echo '"FR"' >"$MNT/kv/wifi/country"
	chmod 600 "$MNT/kv/wifi/country"
	touch -d '2001-02-03 04:05:06.123456789' "$MNT/kv/wifi/net"
	rm "$MNT/kv/app/empty"
	mkdir "$MNT/kv/fresh"
	ctl dump --archive "$STORE" >"$T/a1"
	unmount_dsfs
	# Store B: a factory and runtime entries of its own, mounted, its
	# values in the kernel's caches.
	mkdir -p "$T/srcb/kv/wifi" "$T/srcb/kv/old"
	echo '"US"' >"$T/srcb/kv/wifi/country"
	echo 1 >"$T/srcb/kv/old/x"
	mkdir "$T/b"
	ctl mkfactory "$T/srcb" "$T/b/factory.db"
	echo '{"junk": {"y": 2}}' | ctl load "$T/b" -
	mkdir "$T/mnt2"
	tmo "$DSFS" "$T/b" "$T/mnt2" </dev/null 3>&- 4>&-
	[ "$(cat "$T/mnt2/kv/wifi/country")" = '"US"' ]
	[ "$(cat "$T/mnt2/kv/junk/y")" = 2 ]
	ls "$T/mnt2/kv" "$T/mnt2/kv/old" >/dev/null
	ctl load --archive "$T/b" "$T/a1"
	# The mount shows it at once, through its caches.
	[ "$(cat "$T/mnt2/kv/wifi/country")" = '"FR"' ]
	[ "$(stat -c %a "$T/mnt2/kv/wifi/country")" = 600 ]
	[ "$(TZ=UTC stat -c %y "$T/mnt2/kv/wifi/net")" = "2001-02-03 04:05:06.123456789 +0000" ]
	[ ! -e "$T/mnt2/kv/junk" ]
	[ ! -e "$T/mnt2/kv/old" ]
	[ ! -e "$T/mnt2/kv/app/empty" ]
	[ -d "$T/mnt2/kv/fresh" ]
	[ "$(cat "$T/mnt2/kv/app/n")" = 1.50 ]
	printf "$PNG" | cmp - "$T/mnt2/images/a"
	# The same archive back, mounted and unmounted.
	ctl dump --archive "$T/b" >"$T/a2"
	cmp "$T/a1" "$T/a2"
	fusermount3 -u "$T/mnt2"
	# The daemon lets go of STORE/lock as it exits.
	tmo flock -w 10 "$T/b/lock" true
	ctl dump --archive "$T/b" >"$T/a3"
	cmp "$T/a1" "$T/a3"
	[ ! -e "$T/b/factory.db.new" ]
}
