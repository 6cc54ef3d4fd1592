#!/usr/bin/env bats
# watch.bats - dsfsctl watch STORE [PATH]: one JSON line per committed
# change, whether it came through the mount, from dsfsctl, or from another
# host of a shared runtime; PATH filters; scratch names never show; a
# reader that stalls loses events (told by {"lost":N}) but never stalls
# the writers; SIGINT, SIGTERM, a closed output and the unmount end it
# with status 0.  The hosts of the last tests share a database of a
# PostgreSQL server this file starts.

load helpers

setup_file()
{
	pg_server_start
}

teardown_file()
{
	pg_server_stop
}

setup()
{
	setup_store
	S=$T/src
	mkdir -p "$S/kv/app"
	printf '"factory"\n' >"$S/kv/f"
	printf '1\n' >"$S/kv/app/level"
	make_factory "$S"
}

teardown()
{
	local f h
	# Watchers left running by a failed test.
	for f in "$T"/*.pid; do
		[ -e "$f" ] || continue
		kill -9 "$(cat "$f")" 2>/dev/null || true
	done
	for h in a b; do
		[ -d "$T/$h" ] || continue
		STORE=$T/$h.store MNT=$T/$h unmount_dsfs || true
	done
	teardown_store
}

ctl()
{
	tmo "$DSFSCTL" "$@" 3>&- 4>&-
}

# watch_bg NAME SENTINEL [PATH]: dsfsctl watch $STORE [PATH] in the
# background, its output in $T/NAME.out, its pid in $T/NAME.pid.  Returns
# once it watches: the value SENTINEL (a path in the mount the watch
# takes) is written until a line for it shows.
watch_bg()
{
	local name=$1 sentinel=$2 shown i
	shift 2
	# A layer's own tree shows the entry's path in the merged view.
	shown=${sentinel#ephemeral/}
	shown=${shown#runtime/}
	"$DSFSCTL" watch "$STORE" "$@" >"$T/$name.out" 2>"$T/$name.err" \
		</dev/null 3>&- 4>&- &
	echo $! >"$T/$name.pid"
	for i in $(seq 100); do
		echo 1 >"$MNT/$sentinel"
		grep -q "\"path\":\"$shown\"" "$T/$name.out" && return 0
		sleep 0.1
	done
	fail "dsfsctl watch $* did not start: $(cat "$T/$name.err")"
}

# watch_end NAME [SIGNAL]: end the watcher with SIGINT (or SIGNAL) and
# fail unless it exits with status 0.
watch_end()
{
	local pid rc=0
	pid=$(cat "$T/$1.pid")
	kill -"${2:-INT}" "$pid"
	wait "$pid" || rc=$?
	rm -f "$T/$1.pid"
	[ "$rc" -eq 0 ] ||
		fail "dsfsctl watch ended with status $rc: $(cat "$T/$1.err")"
}

# seen NAME PATTERN: wait up to 10 s for a line of NAME matching the
# grep -E PATTERN.
seen()
{
	local i
	for i in $(seq 100); do
		grep -Eq "$2" "$T/$1.out" && return 0
		sleep 0.1
	done
	fail "no line matching $2 in:" "$(cat "$T/$1.out")"
}

# ops NAME [SENTINEL]: the lines of NAME as "op path [from] origin",
# SENTINEL's left out, and so is what came before its first line (the
# first write of SENTINEL may copy its directory up while the watcher
# starts); every line is checked to be one JSON object with the
# documented fields.
ops()
{
	"$PYTHON" -c '
import json, re, sys
skip = sys.argv[2] if len(sys.argv) > 2 else None
started = not skip
for raw in open(sys.argv[1]):
    e = json.loads(raw)
    if "lost" in e:
        print("lost", e["lost"]); continue
    for k in ("path", "tree", "layer", "op", "version", "time", "origin"):
        assert k in e, (k, raw)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", e["time"]), raw
    assert e["layer"] in ("ephemeral", "runtime", "factory"), raw
    assert e["origin"] in ("mount", "dsfsctl", "remote"), raw
    assert isinstance(e["version"], int), raw
    started = started or e["path"] == skip
    if e["path"] == skip or not started: continue
    print(e["op"], e["path"], *([e["from"]] if "from" in e else []),
          e["origin"])
' "$T/$1.out" "${2:-}"
}

@test "echo, mkdir, mv and rm through the mount are lines, in order" {
	mount_dsfs
	watch_bg w kv/ready
	echo '{"a": 1}' >"$MNT/kv/x"
	mkdir "$MNT/kv/d"
	echo 2 >"$MNT/kv/d/y"
	mv "$MNT/kv/d/y" "$MNT/kv/d/z"
	rm "$MNT/kv/x"
	rm "$MNT/kv/f"
	chmod 700 "$MNT/kv/d"
	mkdir "$MNT/devices/cam"
	echo 3 >"$MNT/devices/cam/v"
	seen w '"path":"devices/cam/v"'
	watch_end w
	run ops w kv/ready
	echo "$output"
	[ "$status" -eq 0 ]
	expected='write kv/x mount
write kv/x mount
mkdir kv/d mount
write kv/d/y mount
write kv/d/y mount
rename kv/d/z kv/d/y mount
remove kv/x mount
whiteout kv/f mount
setattr kv/d mount
mkdir devices/cam mount
write devices/cam/v mount
write devices/cam/v mount'
	[ "$output" = "$expected" ]
	# Versions: the value's last one, as user.dsfs.version tells it.
	v=$(grep '"path":"kv/d/z"' "$T/w.out" | sed 's/.*"version":\([0-9]*\).*/\1/')
	[ "$v" = "$(xattr "$MNT/kv/d/z" user.dsfs.version)" ]
	grep '"path":"devices/cam/v"' "$T/w.out" | grep -q '"tree":"devices"'
}

@test "PATH limits the watch to a subtree, a device, or one layer" {
	mount_dsfs
	mkdir "$MNT/devices/cam"
	watch_bg app kv/app/ready kv/app
	watch_bg dev devices/cam/ready devices/cam
	watch_bg eph ephemeral/kv/ready ephemeral
	echo 2 >"$MNT/kv/app/level"
	echo 3 >"$MNT/kv/apple"
	echo 4 >"$MNT/kv/other"
	echo 5 >"$MNT/kv/__cam/w"
	echo 6 >"$MNT/ephemeral/kv/e"
	mv "$MNT/kv/other" "$MNT/kv/app/moved"
	echo '"end"' >"$MNT/kv/app/end"
	seen app '"path":"kv/app/end"'
	seen dev '"path":"devices/cam/w"'
	seen eph '"path":"ephemeral/kv/e"|"path":"kv/e"'
	for w in app dev eph; do watch_end "$w"; done
	run ops app kv/app/ready
	echo "$output"
	[ "$output" = 'write kv/app/level mount
rename kv/app/moved kv/other mount
write kv/app/end mount
write kv/app/end mount' ]
	run ops dev devices/cam/ready
	echo "$output"
	[ "$output" = 'write devices/cam/w mount
write devices/cam/w mount' ]
	run ops eph kv/ready
	echo "$output"
	[ "$output" = 'write kv/e mount
write kv/e mount' ]
	grep -v '"path":"kv/ready"' "$T/eph.out" | grep -vq '"layer":"ephemeral"' && false
	# A PATH that names nothing a change could touch.
	run ctl watch "$STORE" nowhere/x
	[ "$status" -eq 1 ]
	[[ "$output" == *"nowhere/x: not under kv/, images/ or devices/"* ]]
	run ctl watch "$STORE" kv/../x
	[ "$status" -eq 1 ]
	[[ "$output" == *"'..'"* ]]
}

@test "scratch names never show: a vim-like save is one write of the entry" {
	mount_dsfs
	watch_bg w kv/ready
	echo 1 >"$MNT/kv/s"
	# What vim does: swap file, the 4913 probe, backup by rename, write,
	# then the swap and backup files go.
	printf 'swap bytes' >"$MNT/kv/.s.swp"
	: >"$MNT/kv/4913"
	rm "$MNT/kv/4913"
	mv "$MNT/kv/s" "$MNT/kv/s~"
	echo 2 >"$MNT/kv/s"
	rm "$MNT/kv/s~" "$MNT/kv/.s.swp"
	# An editor that writes a scratch file and renames it over the entry.
	printf '3\n' >"$MNT/kv/#s#"
	mv "$MNT/kv/#s#" "$MNT/kv/s"
	echo 0 >"$MNT/kv/z"
	seen w '"path":"kv/z"'
	watch_end w
	! grep -E 'swp|4913|~|#' "$T/w.out"
	run ops w kv/ready
	echo "$output"
	[ "$(grep -c '^write kv/s mount$' <<<"$output")" -ge 3 ]
	! grep -q 'remove kv/s mount' <<<"$output"
	[ "$(cat "$MNT/kv/s")" = 3 ]
}

# dsfsctl_changes: set, load, factory-reset (limited, then whole) and
# install-factory on $STORE, each a line for a watcher.
dsfsctl_changes()
{
	ctl set "$STORE" kv/app/n 42
	printf '{"l1": 1, "ld": {"x": [2]}}\n' >"$T/doc.json"
	ctl load "$STORE" "$T/doc.json"
	ctl factory-reset --prefix app "$STORE"
	ctl factory-reset "$STORE"
	mkdir -p "$T/f2/kv"
	echo '"new"' >"$T/f2/kv/f"
	ctl mkfactory "$T/f2" "$T/f2.db"
	ctl install-factory "$T/f2.db" "$STORE"
}

@test "dsfsctl set, load, factory-reset and install-factory on the mounted store are lines" {
	mount_dsfs
	watch_bg w kv/ready
	dsfsctl_changes
	seen w '"op":"install-factory"'
	watch_end w
	run ops w kv/ready
	echo "$output"
	grep -qx 'write kv/app/n dsfsctl' <<<"$output"
	grep -qx 'write kv/l1 dsfsctl' <<<"$output"
	grep -qx 'mkdir kv/ld dsfsctl' <<<"$output"
	grep -qx 'write kv/ld/x dsfsctl' <<<"$output"
	grep -qx 'remove kv/app/n dsfsctl' <<<"$output"
	[ "$(grep -c '^reset None dsfsctl$' <<<"$output")" -eq 2 ]
	grep -qx 'install-factory None dsfsctl' <<<"$output"
	grep '"op":"install-factory"' "$T/w.out" | grep -q '"layer":"factory"'
	! grep -q 'mount$' <<<"$output"
}

@test "a watcher that does not read never slows the writers, and is told what it lost" {
	mount_dsfs
	# The reader takes one line (so that it is known to watch), then
	# nothing until the writers are done.
	"$DSFSCTL" watch "$STORE" kv </dev/null 2>"$T/slow.err" 3>&- 4>&- |
		{
			IFS= read -r first
			printf '%s\n' "$first" >"$T/slow.first"
			while [ ! -e "$T/go" ]; do sleep 0.1; done
			cat
		} >"$T/slow.out" 3>&- 4>&- &
	echo $! >"$T/slow.pid"
	for i in $(seq 100); do
		echo 1 >"$MNT/kv/ready"
		[ -s "$T/slow.first" ] && break
		sleep 0.1
	done
	[ -s "$T/slow.first" ]
	watch_bg w kv/ready kv
	tmo "$PYTHON" -c '
import os, sys
for i in range(20000):
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, str(i).encode())
    os.close(fd)' "$MNT/kv/n"
	[ "$(cat "$MNT/kv/n")" = 19999 ]
	# The other watcher, who reads, saw the last of them.
	seen w '"path":"kv/n"'
	# Once the reader reads again, what comes next is shown again (a
	# change made while its queue is still full is lost too: try again).
	touch "$T/go"
	for i in $(seq 100); do
		echo '"after"' >"$MNT/kv/after"
		grep -q '"path":"kv/after"' "$T/slow.out" && break
		sleep 0.1
	done
	seen slow '"path":"kv/after"'
	run ops slow
	lost=$(grep '^lost ' <<<"$output" | awk '{ s += $2 } END { print s + 0 }')
	shown=$(grep -c '^write kv/n ' <<<"$output")
	echo "lost $lost, shown $shown"
	[ "$lost" -gt 0 ]
	[ $((lost + shown)) -ge 20000 ]
	# The lost line comes before what followed the loss.
	last_lost=$(grep -n '^lost ' <<<"$output" | tail -1 | cut -d: -f1)
	after=$(grep -n '^write kv/after ' <<<"$output" | head -1 | cut -d: -f1)
	[ "$last_lost" -lt "$after" ]
	watch_end w
}

@test "SIGINT, SIGTERM, a closed output and the unmount end it with status 0" {
	mount_dsfs
	watch_bg int kv/ready
	watch_end int INT
	watch_bg term kv/ready
	watch_end term TERM
	# head exits after one line: the next write gets EPIPE.
	("$DSFSCTL" watch "$STORE" 3>&- 4>&- | head -n 1 >"$T/head.out"
	 echo "${PIPESTATUS[0]}" >"$T/head.rc") 3>&- 4>&- &
	for i in $(seq 100); do
		echo "$i" >"$MNT/kv/ping"
		[ -s "$T/head.rc" ] && break
		sleep 0.1
	done
	[ "$(cat "$T/head.rc")" = 0 ]
	grep -q '"path":"kv/ping"' "$T/head.out"
	watch_bg um kv/ready
	unmount_dsfs
	pid=$(cat "$T/um.pid")
	rc=0
	wait "$pid" || rc=$?
	rm -f "$T/um.pid"
	[ "$rc" -eq 0 ]
}

@test "an unmounted store with a local runtime: dsfsctl's changes are lines, until the mount's take over" {
	local i
	"$DSFSCTL" watch "$STORE" >"$T/off.out" 2>"$T/off.err" </dev/null 3>&- 4>&- &
	echo $! >"$T/off.pid"
	"$DSFSCTL" watch "$STORE" kv/ld >"$T/sub.out" 2>"$T/sub.err" </dev/null 3>&- 4>&- &
	echo $! >"$T/sub.pid"
	for i in $(seq 100); do
		[ "$(ls "$STORE/watchers" 2>/dev/null | grep -c '\.sock$')" -eq 2 ] && break
		sleep 0.1
	done
	dsfsctl_changes
	seen off '"op":"install-factory"'
	run ops off
	echo "$output"
	grep -qx 'write kv/app/n dsfsctl' <<<"$output"
	grep -qx 'write kv/l1 dsfsctl' <<<"$output"
	grep -qx 'mkdir kv/ld dsfsctl' <<<"$output"
	grep -qx 'write kv/ld/x dsfsctl' <<<"$output"
	grep -qx 'remove kv/app/n dsfsctl' <<<"$output"
	grep -qx 'reset None dsfsctl' <<<"$output"
	grep -qx 'install-factory None dsfsctl' <<<"$output"
	! grep -q '^lost' <<<"$output"
	# PATH limits it as on a mounted store (a reset and a new factory
	# image are about every path).
	run ops sub
	[ "$output" = "$(printf '%s dsfsctl\n' 'mkdir kv/ld' 'write kv/ld/x' \
		'reset None' 'install-factory None')" ] || fail "$output"
	watch_end sub
	# Once the store is mounted, the daemon's lines come instead.
	mount_dsfs
	for i in $(seq 100); do
		echo 1 >"$MNT/kv/m"
		grep -q '"path":"kv/m".*"origin":"mount"' "$T/off.out" && break
		sleep 0.2
	done
	seen off '"path":"kv/m"'
	[ ! -e "$STORE/watchers/$(cat "$T/off.pid").sock" ]
	watch_end off
	unmount_dsfs
	# A watcher that stops reading loses what its socket cannot hold,
	# never slowing the command, and is told so.
	"$DSFSCTL" watch "$STORE" kv >"$T/slow.out" 2>"$T/slow.err" </dev/null 3>&- 4>&- &
	echo $! >"$T/slow.pid"
	for i in $(seq 100); do
		[ -e "$STORE/watchers/$(cat "$T/slow.pid").sock" ] && break
		sleep 0.1
	done
	kill -STOP "$(cat "$T/slow.pid")"
	"$PYTHON" -c 'import json; print(json.dumps({"b": {"k%d" % i: i for i in range(30000)}}))' >"$T/big.json"
	ctl load "$STORE" "$T/big.json"
	kill -CONT "$(cat "$T/slow.pid")"
	seen slow '"lost":'
	watch_end slow
	run ops slow
	lost=$(grep '^lost ' <<<"$output" | awk '{ s += $2 } END { print s + 0 }')
	shown=$(grep -c '^write kv/b/' <<<"$output")
	echo "lost $lost, shown $shown"
	[ "$lost" -gt 0 ]
	[ $((lost + shown)) -eq 30000 ]
}

# host H: mount $T/H.store on $T/H on the test's database.
host()
{
	mkdir -p "$T/$1"
	STORE=$T/$1.store MNT=$T/$1 mount_dsfs -o "runtime=$URI"
}

@test "two hosts on PostgreSQL: a change on host A is a line on host B's watch" {
	URI=$(pg_new_database "w_${BATS_TEST_NUMBER}_$$")
	host a
	host b
	STORE=$T/b.store MNT=$T/b watch_bg b kv/ready
	echo '{"from": "a"}' >"$T/a/kv/x"
	rm "$T/a/kv/x"
	STORE=$T/a.store ctl factory-reset "$T/a.store"
	STORE=$T/b.store MNT=$T/b seen b '"op":"reset"'
	watch_end b
	run ops b kv/ready
	echo "$output"
	grep -qx 'change kv/x remote' <<<"$output"
	[ "$(grep -c '^change kv/x remote$' <<<"$output")" -ge 2 ]
	grep -qx 'reset None remote' <<<"$output"
	grep -q '"path":"kv/x".*"origin":"remote"' "$T/b.out"
	# What it carries: the version host A committed.
	v=$(grep '"path":"kv/x"' "$T/b.out" | grep -v '"version":0' | head -1 |
		sed 's/.*"version":\([0-9]*\).*/\1/')
	[ "$v" -gt 0 ]
}

@test "two hosts on PostgreSQL: a new file that waits for its value is a line on host B's watch at its close, not before" {
	URI=$(pg_new_database "w_${BATS_TEST_NUMBER}_$$")
	host a
	host b
	STORE=$T/b.store MNT=$T/b watch_bg b kv/ready
	# Made by open(O_TRUNC), written and closed later: host B cannot see
	# it before the close, and its watch is not told of it either.  A
	# change made after the open, told after it, shows that nothing was.
	# (Not a shell's exec 5>: it closes a first descriptor at once, which
	# makes the name.)
	mkdir "$T/a/kv/d"
	"$PYTHON" -c 'import os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
print("open", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
os.write(fd, b"42\n")
os.close(fd)
print("closed", flush=True)' "$T/a/kv/d/n" "$T/go" >"$T/held.out" 2>&1 &
	echo $! >"$T/held.pid" # killed by teardown if the test fails
	seen held '^open$'
	echo 1 >"$T/a/kv/after"
	STORE=$T/b.store MNT=$T/b seen b '"path":"kv/after"'
	! grep -q '"path":"kv/d/n"' "$T/b.out" || fail "$(cat "$T/b.out")"
	touch "$T/go"
	seen held '^closed$'
	STORE=$T/b.store MNT=$T/b seen b '"path":"kv/d/n"'
	watch_end b
	run ops b kv/ready
	echo "$output"
	grep -qx 'change kv/d/n remote' <<<"$output"
	# In the order the changes were made on the server.
	[ "$(grep -n 'kv/after' <<<"$output" | tail -1 | cut -d: -f1)" -lt \
		"$(grep -n 'kv/d/n' <<<"$output" | head -1 | cut -d: -f1)" ]
}

@test "an unmounted store on PostgreSQL: watch listens to the database" {
	URI=$(pg_new_database "w_${BATS_TEST_NUMBER}_$$")
	host a
	host b
	mkdir "$T/a/kv/app"
	STORE=$T/b.store MNT=$T/b unmount_dsfs
	"$DSFSCTL" watch "$T/b.store" kv/app >"$T/u.out" 2>"$T/u.err" \
		</dev/null 3>&- 4>&- &
	echo $! >"$T/u.pid"
	for i in $(seq 100); do
		echo "$i" >"$T/a/kv/app/ready"
		grep -q '"path":"kv/app/ready"' "$T/u.out" && break
		sleep 0.1
	done
	echo 9 >"$T/a/kv/app/level"
	echo 9 >"$T/a/kv/elsewhere"
	# dsfsctl on a third, unmounted store of the same database.
	mkdir -p "$T/c.store"
	cp "$T/b.store/runtime.uri" "$T/c.store/"
	ctl set "$T/c.store" kv/app/set 5
	seen u '"path":"kv/app/set"'
	watch_end u
	run ops u kv/app/ready
	echo "$output"
	grep -qx 'change kv/app/level remote' <<<"$output"
	grep -qx 'change kv/app/set remote' <<<"$output"
	! grep -q elsewhere <<<"$output"
}

@test "bash completion offers watch, then a STORE directory" {
	comp()
	{
		bash -c '
			source "$1"; shift
			COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
			_dsfsctl
			printf "%s\n" "${COMPREPLY[@]}" | sort' _ \
			"$BATS_TEST_DIRNAME/../../contrib/dsfsctl.bash" "$@"
	}
	[ "$(comp dsfsctl wa)" = watch ]
	mkdir "$T/wstores"
	: >"$T/wstorefile"
	[ "$(cd "$T" && comp dsfsctl watch wsto)" = wstores ]
}
