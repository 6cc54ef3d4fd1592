#!/usr/bin/env bats
# tools.bats - ordinary shell tools on the mount: sed -i, cp -r, mv, rsync,
# tar, python's json module, chmod, dd, and flock(1) serialising a
# read-modify-write counter between processes.

load helpers

setup()
{
	setup_store
	# A source tree of JSON values to copy in.
	S=$T/src
	mkdir -p "$S/app/sub" "$S/empty"
	printf '{"volume": 5, "theme": "dark"}\n' >"$S/settings"
	printf '"demo"\n' >"$S/app/name"
	printf '[1, 2, 3]' >"$S/app/sub/list"
	printf '  null  \n' >"$S/app/sub/nothing"
	printf '"caf\\u00e9 日本"\n' >"$S/app/utf8 name é"
	: >"$S/app/empty-value"
	chmod 0640 "$S/app/name"
	touch -d '2020-01-02 03:04:05' "$S/settings" "$S/app/sub/list"
}

teardown()
{
	teardown_store
}

@test "sed -i edits a value in place" {
	mount_dsfs
	echo '{"volume": 5, "theme": "dark"}' >"$MNT/kv/settings"
	tmo sed -i 's/"volume": 5/"volume": 7/' "$MNT/kv/settings"
	assert_content "$MNT/kv/settings" $'{"volume": 7, "theme": "dark"}\n'
	[ "$(ls1 "$MNT/kv")" = settings ]
	# An edit that breaks the JSON is refused and changes nothing.
	run tmo sed -i 's/}//' "$MNT/kv/settings"
	[ "$status" -ne 0 ]
	assert_content "$MNT/kv/settings" $'{"volume": 7, "theme": "dark"}\n'
}

@test "cp -r copies a tree into kv/" {
	mount_dsfs
	tmo cp -r "$S" "$MNT/kv/"
	tmo diff -r "$S" "$MNT/kv/src"
	[ "$(cd "$MNT/kv/src" && find . | sort)" = "$(cd "$S" && find . | sort)" ]
	remount_dsfs
	tmo diff -r "$S" "$MNT/kv/src"
}

@test "cp -a keeps modes and times" {
	mount_dsfs
	tmo cp -a "$S" "$MNT/kv/copy"
	tmo diff -r "$S" "$MNT/kv/copy"
	[ "$(stat -c %a "$MNT/kv/copy/app/name")" = 640 ]
	[ "$(stat -c %Y "$MNT/kv/copy/settings")" = "$(stat -c %Y "$S/settings")" ]
}

@test "mv renames values and directories within kv/" {
	mount_dsfs
	tmo cp -r "$S" "$MNT/kv/"
	tmo mv "$MNT/kv/src/settings" "$MNT/kv/settings"
	tmo mv "$MNT/kv/src/app" "$MNT/kv/application"
	tmo mv "$MNT/kv/src" "$MNT/kv/rest"
	[ "$(ls1 "$MNT/kv")" = "$(printf '%s\n' application rest settings)" ]
	[ "$(ls1 "$MNT/kv/rest")" = empty ]
	tmo cmp "$S/settings" "$MNT/kv/settings"
	tmo diff -r "$S/app" "$MNT/kv/application"
	# Over an existing value.
	tmo mv "$MNT/kv/application/name" "$MNT/kv/settings"
	assert_content "$MNT/kv/settings" $'"demo"\n'
	[ ! -e "$MNT/kv/application/name" ]
}

@test "rsync -a twice: identical content, the second run changes nothing" {
	mount_dsfs
	run tmo rsync -a "$S/" "$MNT/kv/dst/"
	[ "$status" -eq 0 ] || fail "rsync failed: $output"
	tmo diff -r "$S" "$MNT/kv/dst"
	run tmo rsync -a --itemize-changes "$S/" "$MNT/kv/dst/"
	[ "$status" -eq 0 ] || fail "rsync failed: $output"
	[ -z "$output" ] || fail "second rsync was not a no-op:" "$output"
	tmo diff -r "$S" "$MNT/kv/dst"
	# After a remount too.
	remount_dsfs
	run tmo rsync -a --itemize-changes "$S/" "$MNT/kv/dst/"
	[ "$status" -eq 0 ] || fail "rsync failed: $output"
	[ -z "$output" ] || fail "rsync after remount was not a no-op:" "$output"
	# A change is carried over.
	printf '{"volume": 9}\n' >"$S/settings"
	tmo rsync -a "$S/" "$MNT/kv/dst/"
	tmo diff -r "$S" "$MNT/kv/dst"
}

@test "tar x into kv/, and tar c back out" {
	mount_dsfs
	tar -C "$S" -cf "$T/src.tar" .
	mkdir "$MNT/kv/t"
	tmo tar -C "$MNT/kv/t" -xf "$T/src.tar"
	tmo diff -r "$S" "$MNT/kv/t"
	[ "$(stat -c %Y "$MNT/kv/t/settings")" = "$(stat -c %Y "$S/settings")" ]
	mkdir "$T/out"
	tmo tar -C "$MNT/kv/t" -cf - . | tar -C "$T/out" -xf -
	tmo diff -r "$S" "$T/out"
}

@test "python json load / dump round trip" {
	mount_dsfs
	echo '{"volume": 5, "list": [1, 2], "nested": {"a": null}}' >"$MNT/kv/cfg"
	run tmo "$PYTHON" -c '
import json, sys
p = sys.argv[1]
with open(p) as f:
    d = json.load(f)
d["volume"] += 1
d["list"].append("three")
with open(p, "w") as f:
    json.dump(d, f, indent=2, sort_keys=True)
with open(p) as f:
    print(json.load(f) == d)
' "$MNT/kv/cfg"
	[ "$status" -eq 0 ]
	[ "$output" = True ]
	"$PYTHON" -c '
import json
print(json.dumps({"list": [1, 2, "three"], "nested": {"a": None}, "volume": 6}, indent=2, sort_keys=True), end="")
' >"$T/expected"
	tmo cmp "$T/expected" "$MNT/kv/cfg"
}

@test "chmod changes the mode" {
	mount_dsfs
	echo 1 >"$MNT/kv/x"
	chmod 600 "$MNT/kv/x"
	[ "$(stat -c %a "$MNT/kv/x")" = 600 ]
	chmod g+r,o+r "$MNT/kv/x"
	[ "$(stat -c %a "$MNT/kv/x")" = 644 ]
	mkdir "$MNT/kv/d"
	chmod 700 "$MNT/kv/d"
	[ "$(stat -c %a "$MNT/kv/d")" = 700 ]
}

@test "heredoc, append, cat, grep, find, ls -l, wc, truncate work" {
	mount_dsfs
	cat >"$MNT/kv/doc" <<'EOF'
{
  "name": "dsfs",
  "tags": ["fuse", "json"]
}
EOF
	[ "$(grep -c '"' "$MNT/kv/doc")" = 2 ]
	[ "$(wc -l <"$MNT/kv/doc")" = 4 ]
	printf '\n\n' >>"$MNT/kv/doc"
	[ "$(wc -l <"$MNT/kv/doc")" = 6 ]
	mkdir -p "$MNT/kv/a/b"
	echo 1 >"$MNT/kv/a/b/c"
	[ "$(cd "$MNT/kv" && find . -type f | sort)" = "$(printf '%s\n' ./a/b/c ./doc)" ]
	[ "$(cd "$MNT/kv" && find . -type d | sort)" = "$(printf '%s\n' . ./a ./a/b)" ]
	ls -l "$MNT/kv" >/dev/null
	tmo truncate -s 0 "$MNT/kv/a/b/c"
	[ "$(stat -c %s "$MNT/kv/a/b/c")" = 0 ]
	cp "$MNT/kv/doc" "$MNT/kv/doc2"
	tmo cmp "$MNT/kv/doc" "$MNT/kv/doc2"
}

@test "touch on an existing value changes its times, not its content" {
	mount_dsfs
	echo '[1]' >"$MNT/kv/x"
	touch -d '2001-02-03 04:05:06' "$MNT/kv/x"
	[ "$(stat -c %Y "$MNT/kv/x")" = "$(date -d '2001-02-03 04:05:06' +%s)" ]
	touch "$MNT/kv/x"
	[ "$(stat -c %Y "$MNT/kv/x")" -gt "$(date -d '2020-01-01' +%s)" ]
	assert_content "$MNT/kv/x" $'[1]\n'
}

@test "flock counter: 8 processes x 25 increments end at exactly 200" {
	mount_dsfs
	echo 0 >"$MNT/kv/n"
	local i pids=()
	for i in 1 2 3 4 5 6 7 8; do
		(
			cd "$MNT/kv" || exit 1
			for _ in $(seq 25); do
				timeout 60 flock n sh -c 'echo $(($(cat n)+1)) > n' || exit 1
			done
		) &
		pids+=($!)
	done
	local failed=0
	for i in "${pids[@]}"; do
		wait "$i" || failed=$((failed + 1))
	done
	[ $failed -eq 0 ] || fail "$failed workers failed"
	assert_content "$MNT/kv/n" $'200\n'
}
