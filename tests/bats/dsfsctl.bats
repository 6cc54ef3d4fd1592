#!/usr/bin/env bats
# dsfsctl.bats - the admin tool: mkfactory's refusals, install-factory and
# factory-reset offline and on a live mount, images refused at install, a
# crash in the middle of an install, usage, check, and the control socket's
# refusal of anyone but the store's owner.
#
# Each test owns a temporary directory $T (helpers.bash) with its source
# trees, images, store and mount point.

load helpers

# A 1x1 PNG.
PNG='\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\1\0\0\0\1\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\0\x05\x18\xd8N\0\0\0\0IEND\xaeB`\x82'

setup()
{
	setup_store
}

teardown()
{
	teardown_store
}

# mk_src DIR VALUE: a factory source whose kv/x is VALUE.
mk_src()
{
	mkdir -p "$1/kv/app" "$1/images" "$1/devices/hub1"
	printf '%s\n' "$2" >"$1/kv/x"
	printf '"hello"\n' >"$1/kv/greeting"
	printf '{"n": 1}\n' >"$1/kv/app/cfg"
	: >"$1/kv/empty"
	printf '5\n' >"$1/devices/hub1/level"
	printf "$PNG" >"$1/images/logo"
}

ctl()
{
	tmo "$DSFSCTL" "$@" 3>&- 4>&-
}

# ctl_ok ARGS...: dsfsctl ARGS, failing the test with its output unless it
# exits 0.
ctl_ok()
{
	local out
	out=$(ctl "$@" 2>&1) || fail "dsfsctl $* failed: $out" || return 1
}

# install_src VALUE: mk_src $T/src VALUE, build $T/img.db from it and
# install that into $STORE.
install_src()
{
	mk_src "$T/src" "$1"
	ctl_ok mkfactory "$T/src" "$T/img.db" || return 1
	ctl_ok install-factory "$T/img.db" "$STORE"
}

# raw_request DIR LINE: send LINE on DIR/control.sock, print the reply.
raw_request()
{
	tmo "$PYTHON" -c '
import os, socket, sys
os.chdir(sys.argv[1])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("control.sock")
s.sendall(sys.argv[2].encode() + b"\n")
data = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    data += b
sys.stdout.write(data.decode())
' "$1" "$2"
}

need_root()
{
	[ "$(id -u)" -eq 0 ] ||
		skip "needs root to run a process as another user (nobody)"
	command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
}

as_nobody()
{
	tmo setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$@" 3>&- 4>&-
}

# ------------------------------------------------------------ the tool

@test "usage: -h prints the synopsis, -V the version, misuse exits 2" {
	run "$DSFSCTL" -h
	[ "$status" -eq 0 ]
	[[ "$output" == "usage: dsfsctl mkfactory [-s SIZE] [--progress | --no-progress] SRC IMAGE"* ]]
	[[ "$output" == *"dsfsctl install-factory IMAGE STORE"* ]]
	[[ "$output" == *"dsfsctl factory-reset [--prefix PATH] [--keep PATH]... [--dry-run] STORE"* ]]
	run "$DSFSCTL" -V
	[ "$status" -eq 0 ]
	[[ "$output" == "dsfsctl "[0-9]* ]]
	run "$DSFSCTL"
	[ "$status" -eq 2 ]
	run "$DSFSCTL" frobnicate "$T"
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown command 'frobnicate'"* ]]
	run "$DSFSCTL" mkfactory "$T"
	[ "$status" -eq 2 ]
	run "$DSFSCTL" usage
	[ "$status" -eq 2 ]
	run "$DSFSCTL" mkfactory -s 12Q "$T" "$T/img"
	[ "$status" -eq 2 ]
	[[ "$output" == *"12Q"* ]]
}

# ------------------------------------------------------------ mkfactory

# refuse SETUP-COMMAND PATTERN: a good source, spoilt by SETUP-COMMAND, is
# refused with exit 1, a message matching PATTERN, and nothing at IMAGE
# (nor a temporary file beside it).
refuse()
{
	rm -rf "$T/src" "$T/img.db" "$T/img.db.tmp"
	mk_src "$T/src" 1
	(cd "$T/src" && eval "$1")
	run ctl mkfactory "$T/src" "$T/img.db"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *$2* ]]
	[ "$(echo "$output" | wc -l)" -eq 1 ]
	[ ! -e "$T/img.db" ]
	[ ! -e "$T/img.db.tmp" ]
}

@test "mkfactory refuses invalid JSON, naming the file" {
	refuse 'printf "{\"a\": 1,}" >kv/bad' "$T/src/kv/bad: invalid JSON"
	refuse 'printf "nul" >kv/app/bad' "$T/src/kv/app/bad: invalid JSON"
	refuse 'printf "{" >devices/hub1/bad' "$T/src/devices/hub1/bad: invalid JSON"
}

@test "mkfactory refuses a file under images/ that is not an image" {
	refuse 'echo "{}" >images/notimg' "$T/src/images/notimg: not a"
}

@test "mkfactory refuses bad names, special files, strays" {
	refuse 'echo 1 >"kv/$(printf "b\xffd")"' "name is not valid UTF-8"
	refuse 'ln -s x kv/link' "$T/src/kv/link: a symbolic link"
	refuse 'mkfifo kv/fifo' "$T/src/kv/fifo: a FIFO"
	refuse 'echo 1 >devices/stray' "$T/src/devices/stray: not a directory"
	refuse 'mkdir other' "$T/src/other: not allowed at the top"
	refuse 'echo 1 >README' "$T/src/README: not allowed at the top"
	refuse 'mkdir -p kv/__hub1 && echo 2 >kv/__hub1/level' \
		"$T/src/devices/hub1/level: same entry"
}

@test "mkfactory leaves an existing IMAGE as it was when it refuses" {
	mk_src "$T/src" 1
	run ctl mkfactory "$T/src" "$T/img.db"
	[ "$status" -eq 0 ]
	cp "$T/img.db" "$T/before.db"
	echo '{bad' >"$T/src/kv/x"
	run ctl mkfactory "$T/src" "$T/img.db"
	[ "$status" -eq 1 ]
	cmp "$T/img.db" "$T/before.db"
}

@test "mkfactory -s: a source over the budget is refused" {
	mk_src "$T/src" 1
	head -c 30000 /dev/zero | tr '\0' a | sed 's/.*/"&"/' >"$T/src/kv/big"
	run ctl mkfactory -s 20K "$T/src" "$T/img.db"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/src/kv/big"*"budget"* ]]
	[ ! -e "$T/img.db" ]
	run ctl mkfactory -s 1M "$T/src" "$T/img.db"
	[ "$status" -eq 0 ]
	[ -f "$T/img.db" ]
}

# ------------------------------------------------------ install, offline

@test "install-factory offline, then the mount shows the factory values" {
	mk_src "$T/src" '{"v": 1}'
	touch -d '2001-02-03 04:05:06' "$T/src/kv/greeting" "$T/src/kv/app"
	chmod 0640 "$T/src/kv/greeting"
	run ctl mkfactory "$T/src" "$T/img.db"
	[ "$status" -eq 0 ]
	run ctl install-factory "$T/img.db" "$STORE"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	cmp "$T/img.db" "$STORE/factory.db"
	[ ! -e "$STORE/factory.db.new" ]
	mount_dsfs
	[ "$(cat "$MNT/factory/kv/x")" = '{"v": 1}' ]
	[ "$(cat "$MNT/kv/x")" = '{"v": 1}' ]
	[ "$(cat "$MNT/kv/app/cfg")" = '{"n": 1}' ]
	[ "$(cat "$MNT/devices/hub1/level")" = 5 ]
	[ "$(cat "$MNT/kv/__hub1/level")" = 5 ]
	[ ! -s "$MNT/kv/empty" ]
	cmp "$MNT/images/logo" "$T/src/images/logo"
	# The source file's mode and mtime were kept.
	[ "$(stat -c %a "$MNT/factory/kv/greeting")" = 640 ]
	[ "$(stat -c %Y "$MNT/factory/kv/greeting")" = \
		"$(stat -c %Y "$T/src/kv/greeting")" ]
	# And a directory's, though names were made in it after it.
	[ "$(stat -c %Y "$MNT/factory/kv/app")" = \
		"$(stat -c %Y "$T/src/kv/app")" ]
}

@test "install-factory refuses an image with invalid content, naming the key" {
	command -v sqlite3 >/dev/null || skip "needs the sqlite3 command"
	mk_src "$T/src" 1
	run ctl mkfactory "$T/src" "$T/good.db"
	[ "$status" -eq 0 ]
	run ctl install-factory "$T/good.db" "$STORE"
	[ "$status" -eq 0 ]
	cp "$T/good.db" "$T/bad.db"
	sqlite3 "$T/bad.db" \
		"UPDATE entry SET value = CAST('{bad' AS BLOB), size = 4 WHERE parent = 'kv/app' AND name = 'cfg';"
	run ctl install-factory "$T/bad.db" "$STORE"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/bad.db: kv/app/cfg: invalid JSON"* ]]
	cmp "$STORE/factory.db" "$T/good.db"
	[ ! -e "$STORE/factory.db.new" ]

	# Not an image at all, and a SQLite file that is not a store.
	echo '{}' >"$T/junk"
	run ctl install-factory "$T/junk" "$STORE"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/junk: not a factory image"* ]]
	sqlite3 "$T/foreign.db" "CREATE TABLE t(x);"
	run ctl install-factory "$T/foreign.db" "$STORE"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/foreign.db: not a factory image"* ]]
	cmp "$STORE/factory.db" "$T/good.db"
}

@test "install-factory refuses a bad image with a wrong type or token too" {
	command -v sqlite3 >/dev/null || skip "needs the sqlite3 command"
	mk_src "$T/src" 1
	run ctl mkfactory "$T/src" "$T/good.db"
	[ "$status" -eq 0 ]
	cp "$T/good.db" "$T/bad.db"
	sqlite3 "$T/bad.db" "UPDATE entry SET type = 'array' WHERE name = 'x';"
	run ctl install-factory "$T/bad.db" "$STORE"
	[ "$status" -eq 1 ]
	[[ "$output" == *"kv/x: recorded type 'array'"* ]]
	cp "$T/good.db" "$T/bad.db"
	# Still a PNG, but not the bytes its token names.
	sqlite3 "$T/bad.db" "UPDATE blob SET data = CAST(replace(data, X'ae426082', X'ae426083') AS BLOB);"
	run ctl install-factory "$T/bad.db" "$STORE"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/bad.db: images/logo: recorded token"* ]]
	[ ! -e "$STORE/factory.db" ]
}

# -------------------------------------------------------- install, live

@test "install-factory on a live mount: the new value shows on return" {
	mk_src "$T/a" '"old"'
	mk_src "$T/b" '"new"'
	echo 7 >"$T/b/kv/added"
	run ctl mkfactory "$T/a" "$T/a.db"
	[ "$status" -eq 0 ]
	run ctl mkfactory "$T/b" "$T/b.db"
	[ "$status" -eq 0 ]
	run ctl install-factory "$T/a.db" "$STORE"
	[ "$status" -eq 0 ]
	mount_dsfs
	[ "$(cat "$MNT/kv/x")" = '"old"' ]
	[ ! -e "$MNT/kv/added" ]
	run ctl install-factory "$T/b.db" "$STORE"
	[ "$status" -eq 0 ]
	[ "$(cat "$MNT/kv/x")" = '"new"' ]
	[ "$(cat "$MNT/factory/kv/x")" = '"new"' ]
	[ "$(cat "$MNT/kv/added")" = 7 ]
	cmp "$STORE/factory.db" "$T/b.db"
	[ ! -e "$STORE/factory.db.new" ]
	# A runtime value still wins over the new factory one.
	echo '"mine"' >"$MNT/kv/x"
	run ctl install-factory "$T/a.db" "$STORE"
	[ "$status" -eq 0 ]
	[ "$(cat "$MNT/kv/x")" = '"mine"' ]
	[ "$(cat "$MNT/factory/kv/x")" = '"old"' ]
	[ ! -e "$MNT/kv/added" ]
}

@test "install-factory on a live mount refuses a bad image and keeps the old" {
	command -v sqlite3 >/dev/null || skip "needs the sqlite3 command"
	mk_src "$T/a" '"old"'
	run ctl mkfactory "$T/a" "$T/a.db"
	[ "$status" -eq 0 ]
	run ctl install-factory "$T/a.db" "$STORE"
	[ "$status" -eq 0 ]
	mount_dsfs
	cp "$T/a.db" "$T/bad.db"
	sqlite3 "$T/bad.db" "UPDATE entry SET value = CAST('[1,' AS BLOB) WHERE name = 'x';"
	run ctl install-factory "$T/bad.db" "$STORE"
	[ "$status" -eq 1 ]
	[[ "$output" == *"kv/x: invalid JSON"* ]]
	[ "$(cat "$MNT/kv/x")" = '"old"' ]
	cmp "$STORE/factory.db" "$T/a.db"
}

# ---------------------------------------------------------- factory-reset

@test "factory-reset offline: runtime values vanish, factory values show" {
	install_src '"factory"'
	mount_dsfs
	echo '"changed"' >"$MNT/kv/x"
	echo 1 >"$MNT/kv/mine"
	rm "$MNT/kv/greeting"
	[ "$(cat "$MNT/kv/x")" = '"changed"' ]
	unmount_dsfs
	run ctl factory-reset "$STORE"
	[ "$status" -eq 0 ]
	mount_dsfs
	[ "$(cat "$MNT/kv/x")" = '"factory"' ]
	[ ! -e "$MNT/kv/mine" ]
	[ "$(cat "$MNT/kv/greeting")" = '"hello"' ]
}

@test "factory-reset live: runtime and ephemeral values vanish at once" {
	install_src '"factory"'
	mount_dsfs
	echo '"changed"' >"$MNT/kv/x"
	echo 1 >"$MNT/kv/mine"
	echo 2 >"$MNT/ephemeral/kv/tmp"
	rm "$MNT/kv/greeting"
	[ ! -e "$MNT/kv/greeting" ]
	run ctl factory-reset "$STORE"
	[ "$status" -eq 0 ]
	[ "$(cat "$MNT/kv/x")" = '"factory"' ]
	[ ! -e "$MNT/kv/mine" ]
	[ ! -e "$MNT/kv/tmp" ]
	[ "$(cat "$MNT/kv/greeting")" = '"hello"' ]
}

@test "factory-reset of a store never mounted succeeds and does nothing" {
	mkdir -m 0700 "$STORE"
	run ctl factory-reset "$STORE"
	[ "$status" -eq 0 ]
	[ ! -e "$STORE/runtime.db" ]
	run ctl factory-reset "$T/nonexistent"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/nonexistent"* ]]
}

@test "a store path longer than a socket address works, mounted too" {
	STORE=$T/$(printf 'd%.0s' $(seq 100))/$(printf 'e%.0s' $(seq 60))/store
	[ "${#STORE}" -gt 108 ]
	mkdir -p "${STORE%/store}"
	install_src '"factory"'
	mount_dsfs
	echo '"runtime"' >"$MNT/kv/x"
	run ctl usage "$STORE"
	[ "$status" -eq 0 ]
	[[ "${lines[1]}" =~ ^runtime\ [1-9] ]]
	run ctl factory-reset "$STORE"
	[ "$status" -eq 0 ]
	[ "$(cat "$MNT/kv/x")" = '"factory"' ]
}

# ------------------------------------------------------------ crash safety

# killed_asan_options: ASAN_OPTIONS for a dsfsctl that is killed on
# purpose.  Under the sanitizers a kill that lands while the program exits
# interrupts LeakSanitizer's scan, which then writes a report of its own
# failure ("Unable to get registers"); memory errors up to the kill are
# still reported.
killed_asan_options()
{
	echo "${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
}

# kill_when_changing IMG: start installing IMG.db and, as soon as the store
# starts to change (factory.db or factory.db.new is created or written),
# let a random 0-20 ms pass and kill -9 the installer.  Python, to watch
# the files within microseconds.
kill_when_changing()
{
	ASAN_OPTIONS=$(killed_asan_options) tmo "$PYTHON" -c '
import os, random, subprocess, sys, time
store, cmd = sys.argv[1], sys.argv[2:]
def state():
    out = []
    for name in ("factory.db", "factory.db.new"):
        try:
            st = os.stat(os.path.join(store, name))
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            out.append(None)
    return out
before = state()
p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while p.poll() is None and state() == before:
    pass
time.sleep(random.uniform(0, 0.02))
p.kill()
p.wait()
' "$STORE" "$DSFSCTL" install-factory "$T/$1.db" "$STORE" 3>&- 4>&-
}

# crash_loop live|offline: 30 times, start an install of a.db or b.db and
# kill it with SIGKILL at a random point; factory.db must always be a.db or
# b.db byte for byte (and, live, what the mount shows).
crash_loop()
{
	local i img d full t0
	# Big enough that copying takes a moment.
	for img in a b; do
		mk_src "$T/$img" "\"$img\""
		{
			printf '\x89PNG\r\n\x1a\n\0\0\0\rIHDR'
			head -c 4000000 /dev/urandom
		} >"$T/$img/images/big"
		ctl mkfactory "$T/$img" "$T/$img.db"
	done
	ctl install-factory "$T/a.db" "$STORE"
	[ "$1" = offline ] || mount_dsfs
	t0=$(date +%s%N)
	ctl install-factory "$T/b.db" "$STORE"
	full=$(( $(date +%s%N) - t0 ))
	for i in $(seq 30); do
		img=$([ $((i % 2)) -eq 0 ] && echo a || echo b)
		if [ $((i % 3)) -eq 0 ]; then
			# Anywhere, the image check included.
			d=$(awk -v r=$RANDOM -v f="$full" \
				'BEGIN { printf "%.4f", r / 32768 * f * 1.3 / 1e9 + 0.0005 }')
			ASAN_OPTIONS=$(killed_asan_options) \
				timeout -s KILL "$d" "$DSFSCTL" install-factory \
				"$T/$img.db" "$STORE" 3>&- 4>&- 2>/dev/null || true
		else
			d=changing
			kill_when_changing "$img"
		fi
		cmp -s "$STORE/factory.db" "$T/a.db" ||
			cmp -s "$STORE/factory.db" "$T/b.db" || {
			echo "iteration $i (kill: $d): factory.db is neither image" >&2
			return 1
		}
		if [ "$1" = live ]; then
			# The daemon serves one request at a time: once usage
			# answers, an install it took is complete.
			ctl usage "$STORE" >/dev/null
			if cmp -s "$STORE/factory.db" "$T/a.db"; then
				[ "$(cat "$MNT/factory/kv/x")" = '"a"' ]
			else
				[ "$(cat "$MNT/factory/kv/x")" = '"b"' ]
			fi
		fi
	done
	# Whatever was left behind, the next install works.
	run ctl install-factory "$T/b.db" "$STORE"
	[ "$status" -eq 0 ]
	cmp "$STORE/factory.db" "$T/b.db"
	[ ! -e "$STORE/factory.db.new" ]
}

@test "install-factory killed at random points (offline): old or new image" {
	crash_loop offline
}

@test "install-factory killed at random points (live): old or new image" {
	crash_loop live
}

# ------------------------------------------------------------ usage, check

@test "usage offline and mounted: one line per layer, used and budget" {
	install_src 1
	run ctl usage "$STORE"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 3 ]
	[ "${lines[0]}" = "ephemeral 0 134217728" ]
	[ "${lines[1]}" = "runtime 0 13631488" ]
	[[ "${lines[2]}" =~ ^factory\ [1-9][0-9]*\ 13631488$ ]]
	factory_line=${lines[2]}
	mount_dsfs
	echo '"abc"' >"$MNT/kv/new"
	run ctl usage "$STORE"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 3 ]
	[ "${lines[0]}" = "ephemeral 0 134217728" ]
	# name (3 bytes) + value (6 bytes)
	[ "${lines[1]}" = "runtime 9 13631488" ]
	[ "${lines[2]}" = "$factory_line" ]
}

@test "check: a good store passes, a damaged value is reported" {
	command -v sqlite3 >/dev/null || skip "needs the sqlite3 command"
	install_src 1
	mount_dsfs
	echo '{"k": true}' >"$MNT/kv/rt"
	# Mounted: a snapshot is checked, with the report of an unmounted
	# store, while writers go on.
	mounted=$(ctl check "$STORE")
	unmount_dsfs
	run ctl check "$STORE"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "$mounted" ]
	[[ "$output" == *"runtime.db: "*"ok"* ]]
	[[ "$output" == *"factory.db: "*"ok"* ]]
	[ "$(ls "$STORE" | grep -c '^check\.')" -eq 0 ]
	sqlite3 "$STORE/runtime.db" "UPDATE entry SET value = CAST('{\"k\": tru' AS BLOB) WHERE name = 'rt';"
	run ctl check "$STORE"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"runtime.db: kv/rt: invalid JSON"* ]]
	[[ "$output" == *"problem"* ]]
	# Usage figures that do not add up are a problem too.
	sqlite3 "$STORE/factory.db" "UPDATE meta SET v = v + 5 WHERE k = 'used';"
	run ctl check "$STORE"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"factory.db: usage: records"* ]]
}

@test "check on a mounted store while writers write, and a damage found" {
	command -v sqlite3 >/dev/null || skip "needs the sqlite3 command"
	mount_dsfs
	mkdir "$MNT/kv/w"
	(
		for i in $(seq 400); do
			echo "{\"i\": $i}" >"$MNT/kv/w/v$((i % 20))"
		done
	) &
	writer=$!
	for _ in 1 2 3; do
		run ctl check "$STORE"
		echo "$output"
		[ "$status" -eq 0 ]
		[[ "$output" == *"runtime.db: "*"ok"* ]]
	done
	wait "$writer"
	assert_content "$MNT/kv/w/v0" $'{"i": 400}\n'
	# The daemon holds runtime.db exclusively: damage it unmounted.
	unmount_dsfs
	sqlite3 "$STORE/runtime.db" "UPDATE entry SET value = CAST('{\"i\": ' AS BLOB) WHERE name = 'v1';"
	mount_dsfs
	run ctl check "$STORE"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"runtime.db: kv/w/v1: invalid JSON"* ]]
	[ "$(ls "$STORE" | grep -c '^check\.')" -eq 0 ]
}

# -------------------------------------------------------------- ownership

@test "the control socket refuses a non-owner; dsfsctl refuses others' stores" {
	need_root
	install_src '"factory"'
	mount_dsfs
	echo '"runtime"' >"$MNT/kv/x"
	[ "$(stat -c '%a %U' "$STORE/control.sock")" = "600 root" ]
	run raw_request "$STORE" ping
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^OK\ [0-9]+$ ]]

	# Open the way to the socket: only the peer check is left.
	chmod 0711 "$STORE"
	chmod 0666 "$STORE/control.sock"
	run as_nobody "$PYTHON" -c 'pass'
	[ "$status" -eq 0 ] || skip "nobody cannot run $PYTHON"
	run as_nobody "$PYTHON" -c '
import os, socket, sys
os.chdir(sys.argv[1])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("control.sock")
s.sendall(b"factory-reset\n")
sys.stdout.write(s.recv(4096).decode())
' "$STORE"
	chmod 0700 "$STORE"
	chmod 0600 "$STORE/control.sock"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "ERR EPERM only the store's owner"* ]]
	[ "$(cat "$MNT/kv/x")" = '"runtime"' ]

	# dsfsctl itself refuses a store that is not the caller's.
	run as_nobody "$DSFSCTL" factory-reset "$STORE"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$STORE: store owned by uid 0"* ]]
	[ "$(cat "$MNT/kv/x")" = '"runtime"' ]
}

@test "dsfsctl does not believe a control socket served by someone else" {
	need_root
	run as_nobody "$PYTHON" -c 'pass'
	[ "$status" -eq 0 ] || skip "nobody cannot run $PYTHON"
	mkdir -m 0777 "$STORE"
	touch "$STORE/lock"
	chmod 0666 "$STORE/lock"
	# nobody squats the store: holds its lock and serves control.sock.
	as_nobody "$PYTHON" -c '
import fcntl, os, socket, sys, time
os.chdir(sys.argv[1])
lock = open("lock", "r")
fcntl.flock(lock, fcntl.LOCK_EX)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("control.sock")
s.listen(1)
open("ready", "w").close()
s.settimeout(30)
try:
    c, _ = s.accept()
    c.recv(100)
    c.sendall(b"OK\n")
    c.close()
except socket.timeout:
    pass
' "$STORE" </dev/null >/dev/null 2>&1 &
	squatter=$!
	for i in $(seq 100); do
		[ -e "$STORE/ready" ] && break
		sleep 0.05
	done
	chmod 0700 "$STORE"
	run ctl factory-reset "$STORE"
	kill "$squatter" 2>/dev/null || true
	wait "$squatter" 2>/dev/null || true
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"served by uid $(id -u nobody)"*"not trusted"* ]]
}
