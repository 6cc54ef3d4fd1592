#!/usr/bin/env bats
# cluster.bats - several hosts on one shared runtime: flock() honoured
# across them, and each host seeing the others' changes (close-to-open,
# and pushed invalidations of its kernel caches).  The hosts are mounts
# of separate STORE directories ($T/a.store on $T/a, ...) on one
# PostgreSQL database of a server this file starts.

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
	URI=$(pg_new_database "c_${BATS_TEST_NUMBER}_$$") || return 1
	export URI
	: >"$T/pids"
}

teardown()
{
	local h pid
	# Processes left holding or waiting for locks on the mounts.
	while read -r pid; do
		kill -9 "$pid" 2>/dev/null || true
	done <"$T/pids"
	for h in a b c; do
		STORE=$T/$h.store MNT=$T/$h unmount_dsfs || true
		STORE=$T/$h.store teardown_daemons
	done
	teardown_store
}

# teardown_daemons: no daemon of $STORE is left.
teardown_daemons()
{
	local pids
	pids=$(daemon_pids)
	# shellcheck disable=SC2086 # a list of pids
	[ -z "$pids" ] || kill -9 $pids 2>/dev/null
	wait_daemon_gone 10 || true
}

# host H [dsfs options...]: mount host H ($T/H.store on $T/H) on the
# test's database.
host()
{
	local h=$1
	shift
	mkdir -p "$T/$h"
	STORE=$T/$h.store MNT=$T/$h mount_dsfs -o "runtime=$URI" "$@"
}

# bg CMD...: run CMD in the background, its pid noted for teardown.
bg()
{
	"$@" </dev/null >/dev/null 2>&1 3>&- 4>&- &
	echo $! >>"$T/pids"
}

# hold FILE [sh]: a process that locks FILE (exclusive, or shared) and
# keeps it until killed; one process, so that killing it releases it.
hold()
{
	bg "$PYTHON" -c 'import fcntl, sys, time
f = open(sys.argv[1])
fcntl.flock(f, fcntl.LOCK_SH if sys.argv[2:] == ["sh"] else fcntl.LOCK_EX)
time.sleep(120)' "$@"
}

# locked FILE: true once flock -n on FILE is refused.
locked()
{
	local tries=100
	while tmo flock -n "$1" true; do
		tries=$((tries - 1))
		[ $tries -gt 0 ] || return 1
		sleep 0.05
	done
}

# within SECS CMD...: true as soon as CMD succeeds, polling every 20 ms.
within()
{
	local tries=$(($1 * 50))
	shift
	until "$@"; do
		tries=$((tries - 1))
		[ $tries -gt 0 ] || return 1
		sleep 0.02
	done
}

# size_is FILE N: stat says FILE has N bytes.
size_is()
{
	[ "$(stat -c %s "$1" 2>/dev/null)" = "$2" ]
}

# Python's flock(2) without its retry on EINTR: prints OK or the errno.
FLOCK_PY='
import ctypes, errno, fcntl, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
signal.signal(signal.SIGALRM, lambda s, f: None)
fd = os.open(sys.argv[1], os.O_RDONLY)
op = {"ex": fcntl.LOCK_EX, "sh": fcntl.LOCK_SH,
      "exnb": fcntl.LOCK_EX | fcntl.LOCK_NB,
      "shnb": fcntl.LOCK_SH | fcntl.LOCK_NB}[sys.argv[2]]
if len(sys.argv) > 3:
    signal.setitimer(signal.ITIMER_REAL, float(sys.argv[3]))
rc = libc.flock(fd, op)
print("OK" if rc == 0 else errno.errorcode[ctypes.get_errno()])
'

pyflock()
{
	tmo "$PYTHON" -c "$FLOCK_PY" "$@"
}

# nb_refused FILE: an exclusive flock(LOCK_NB) of FILE is refused.
nb_refused()
{
	[ "$(pyflock "$1" exnb)" = EAGAIN ]
}

# waits_in_fuse PID: PID is blocked in a FUSE request (its flock).
waits_in_fuse()
{
	grep -q request_wait_answer "/proc/$1/wchan" 2>/dev/null ||
		grep -q fuse "/proc/$1/stack" 2>/dev/null
}

# shared_ok FILE: a shared flock(LOCK_NB) of FILE is granted.
shared_ok()
{
	[ "$(pyflock "$1" shnb)" = OK ]
}

@test "flock counter: 3 hosts x 4 processes add exactly 12" {
	local h i pids=()
	host a
	host b
	host c
	echo 0 >"$T/a/kv/n"
	for h in a b c; do
		for i in 1 2 3 4; do
			(
				cd "$T/$h/kv" &&
					tmo flock n sh -c 'echo $(($(cat n)+1)) > n'
			) 3>&- 4>&- &
			pids+=($!)
		done
	done
	# Not a bare wait: bats' own watchdog is a child too.
	wait "${pids[@]}"
	for h in a b c; do
		assert_content "$T/$h/kv/n" "12
"
	done
}

@test "flock LOCK_NB across hosts: EWOULDBLOCK while another host holds it" {
	host a
	host b
	echo 1 >"$T/a/kv/l"
	hold "$T/a/kv/l"
	locked "$T/b/kv/l"
	[ "$(pyflock "$T/b/kv/l" exnb)" = EAGAIN ]
	[ "$(pyflock "$T/b/kv/l" shnb)" = EAGAIN ]
	# The same key under devices/ and runtime/ is the same lock.
	mkdir "$T/a/kv/__d1"
	echo 2 >"$T/a/kv/__d1/x"
	hold "$T/a/devices/d1/x"
	locked "$T/b/runtime/kv/__d1/x"
	# Shared locks share across hosts.
	echo 3 >"$T/a/kv/s"
	hold "$T/a/kv/s" sh
	# Once the holder has its shared lock (host b's exclusive one is
	# refused), another shared one is granted on both hosts.
	within 5 nb_refused "$T/b/kv/s"
	[ "$(pyflock "$T/b/kv/s" shnb)" = OK ]
	[ "$(pyflock "$T/b/kv/s" exnb)" = EAGAIN ]
	tmo flock -n -s "$T/a/kv/s" true
	# Released at the holder's last close: the other host gets it.
	kill "$(sed -n 1p "$T/pids")"
	within 5 tmo flock -n "$T/b/kv/l" true
}

@test "flock across hosts: a shared lock handed over from an exclusive holder here lets the other hosts' shared locks in" {
	host a
	host b
	echo 1 >"$T/a/kv/h"
	hold "$T/a/kv/h"
	locked "$T/b/kv/h"
	# A shared waiter on host a, handed the key when the exclusive
	# holder goes: host a's hold on the cluster becomes shared too.
	hold "$T/a/kv/h" sh
	within 5 waits_in_fuse "$(sed -n 2p "$T/pids")"
	kill "$(sed -n 1p "$T/pids")"
	within 5 shared_ok "$T/a/kv/h"
	[ "$(pyflock "$T/b/kv/h" shnb)" = OK ]
	[ "$(pyflock "$T/b/kv/h" exnb)" = EAGAIN ]
}

@test "a blocked flock interrupted by a signal fails with EINTR" {
	host a
	host b
	echo 1 >"$T/a/kv/l"
	hold "$T/a/kv/l"
	locked "$T/b/kv/l"
	# Waiting behind another host, and behind a process of this host.
	[ "$(pyflock "$T/b/kv/l" ex 0.5)" = EINTR ]
	[ "$(pyflock "$T/a/kv/l" ex 0.5)" = EINTR ]
	[ "$(pyflock "$T/b/kv/l" sh 0.5)" = EINTR ]
	# The interrupted waits left nothing behind.
	kill "$(sed -n 1p "$T/pids")"
	[ "$(pyflock "$T/b/kv/l" ex 10)" = OK ]
	[ "$(pyflock "$T/a/kv/l" ex 10)" = OK ]
}

@test "a host killed with SIGKILL while holding a lock releases it" {
	host a
	host b
	echo 1 >"$T/a/kv/k"
	hold "$T/a/kv/k"
	locked "$T/b/kv/k"
	STORE=$T/a.store kill_daemon
	within 5 tmo flock -n "$T/b/kv/k" true
}

@test "close-to-open across hosts: values, new names and removals" {
	host a
	host b
	# A name looked up (and missed) on b is found once a makes it.
	[ "$(pyop stat "$T/b/kv/cfg")" = ENOENT ]
	echo '{"url":"https://x"}' >"$T/a/kv/cfg"
	assert_content "$T/b/kv/cfg" '{"url":"https://x"}
'
	echo '{"url":"https://longer.example"}' >"$T/a/kv/cfg"
	assert_content "$T/b/kv/cfg" '{"url":"https://longer.example"}
'
	size_is "$T/b/kv/cfg" 33
	mkdir "$T/a/kv/app"
	echo 5 >"$T/a/kv/app/n"
	assert_content "$T/b/kv/app/n" "5
"
	[ "$(ls1 "$T/b/kv")" = "app
cfg" ]
	rm "$T/b/kv/cfg"
	[ "$(pyop stat "$T/a/kv/cfg")" = ENOENT ]
	mv "$T/a/kv/app/n" "$T/a/kv/app/m"
	[ "$(ls1 "$T/b/kv/app")" = m ]
}

@test "a file made by open(O_TRUNC) reaches the other hosts with its value, at its close; one whose host dies before its close is not made" {
	host a
	host b
	# Created, written, still open on a: a sees it, b does not; the close
	# makes it on the server with its value.  An O_EXCL name is decided
	# by the server at the open.
	run tmo "$PYTHON" - "$T/a/kv" "$T/b/kv" <<'EOF'
import os, sys
a, b = sys.argv[1], sys.argv[2]
fd = os.open(a + "/n", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
os.write(fd, b"42\n")
if os.stat(a + "/n").st_mode & 0o777 != 0o600:
    sys.exit("a does not see its new file")
if os.path.exists(b + "/n"):
    sys.exit("b sees the name before its close")
os.close(fd)
if open(b + "/n").read() != "42\n" or os.stat(b + "/n").st_mode & 0o777 != 0o600:
    sys.exit("b does not read the value and mode after the close")
fd = os.open(a + "/x", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
if not os.path.exists(b + "/x"):
    sys.exit("b does not see an O_EXCL name at once")
os.close(fd)
print("ok")
EOF
	[ "$status" -eq 0 ] || fail "$output"
	[ "$output" = ok ] || fail "$output"
	# touch: closed with nothing written, the name stays.
	touch "$T/a/kv/t"
	[ "$(pyop stat "$T/b/kv/t")" = OK ]
	# A listing on a makes what a's open files created in that directory.
	exec 5>"$T/a/kv/l"
	ls "$T/a/kv" >/dev/null
	[ "$(pyop stat "$T/b/kv/l")" = OK ]
	exec 5>&-
	# The daemon killed while a created file is still open: no host has
	# the name (dsfs(8), DURABILITY).
	"$PYTHON" -c 'import os, sys, time
os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
print("open", flush=True)
time.sleep(60)' "$T/a/kv/lost" >"$T/held" 2>&1 &
	echo $! >>"$T/pids"
	within 10 grep -q open "$T/held"
	[ "$(pyop stat "$T/a/kv/lost")" = OK ]
	STORE=$T/a.store kill_daemon
	[ "$(pyop stat "$T/b/kv/lost")" = ENOENT ]
	[ "$(pyop stat "$T/b/kv/n")" = OK ]
}

@test "O_CREAT|O_EXCL of the same new names on three hosts at once: each name is made by exactly one" {
	host a
	host b
	host c
	# Each host's process makes the same 300 names, in the same order, as
	# fast as it can: for every name one open succeeds, the others see
	# EEXIST, and the value is the winner's.
	run tmo "$PYTHON" - "$BATS_TEST_DIRNAME" "$T/a" "$T/b" "$T/c" <<'EOF'
import os, sys
sys.path.insert(0, sys.argv[1])
from hosts_race import race

def make(mnt):
    won = []
    for i in range(300):
        try:
            fd = os.open("%s/kv/x%d" % (mnt, i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        os.write(fd, b'"%s"\n' % mnt.encode())
        os.close(fd)
        won.append(i)
    return won

mounts = sys.argv[2:]
winner = {}
for mnt, won in race(make, mounts).items():
    for i in won:
        if i in winner:
            sys.exit("x%d made by %s and by %s" % (i, winner[i], mnt))
        winner[i] = mnt
if sorted(winner) != list(range(300)):
    sys.exit("names made by nobody: %r" % sorted(set(range(300)) - set(winner)))
for i, mnt in winner.items():
    for m in mounts:
        with open("%s/kv/x%d" % (m, i)) as f:
            got = f.read()
        if got != '"%s"\n' % mnt:
            sys.exit("x%d on %s reads %r, made by %s" % (i, m, got, mnt))
print("ok", {m: sum(1 for w in winner.values() if w == m) for m in mounts})
EOF
	[ "$status" -eq 0 ] || fail "$output"
}

@test "O_CREAT without O_EXCL of the same new names on three hosts at once: every open succeeds, on the one file" {
	host a
	host b
	host c
	# The same race as above, as a shell's > or an fopen(..., "w") runs
	# it: the hosts whose create loses must open the file made, not fail
	# with EEXIST.  The value is the last commit's, one host's whole.
	run tmo "$PYTHON" - "$BATS_TEST_DIRNAME" "$T/a" "$T/b" "$T/c" <<'EOF'
import os, sys
sys.path.insert(0, sys.argv[1])
from hosts_race import race

def make(mnt):
    for i in range(300):
        fd = os.open("%s/kv/y%d" % (mnt, i), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        os.write(fd, b'"%s"\n' % mnt.encode())
        os.close(fd)

mounts = sys.argv[2:]
race(make, mounts)
made = ['"%s"\n' % m for m in mounts]
for i in range(300):
    got = {open("%s/kv/y%d" % (m, i)).read() for m in mounts}
    if len(got) != 1 or got.pop() not in made:
        sys.exit("y%d reads differently or mixed on the hosts" % i)
print("ok")
EOF
	[ "$status" -eq 0 ] || fail "$output"
}

@test "page cache across hosts: an open after another host's commit reads it whole, a held reader keeps its value" {
	host a
	host b -o cache_timeout=60
	local i v
	echo '"first"' >"$T/a/kv/pc"
	assert_content "$T/b/kv/pc" '"first"
'
	cat "$T/b/kv/pc" >/dev/null # warm: from b's page cache
	exec 5<"$T/b/kv/pc"
	for i in 1 2 3 4 5 6 7 8; do
		v="\"$(printf 'v%.0s' $(seq $((i * 7))))\""
		echo "$v" >"$T/a/kv/pc"
		# close-to-open: no wait for the notice.  Read to the end: b
		# caches attributes (cache_timeout), so until the notice comes
		# the size it reports may still be the old one (dsfs.8), and
		# `cmp -s` would trust it.
		[ "$(cat "$T/b/kv/pc")" = "$v" ] ||
			fail "b read '$(cat "$T/b/kv/pc")' after $i, not $v"
		within 2 size_is "$T/b/kv/pc" $((${#v} + 1)) ||
			fail "size on b after $i"
	done
	[ "$(cat <&5)" = '"first"' ] || fail "b's held reader lost its value"
	exec 5<&-
}

@test "images across hosts: a read on one host after another's commit, warm or through runtime/images, is the new image whole; a held reader keeps the old" {
	host a
	host b -o cache_timeout=60
	run tmo "$PYTHON" - "$T/a" "$T/b" <<'EOF'
import hashlib, os, random, sys
a, b = sys.argv[1], sys.argv[2]
def img(n):
    # 4 KiB to 600 KiB (several READs), its number in its first bytes
    size = 4096 + n * 104729 % 600000
    head = b"\x89PNG\r\n\x1a\n%d\n" % n
    return head + random.Random(n).randbytes(size - len(head))
def read(p):
    with open(p, "rb") as f:
        return f.read()
def sha(d):
    return hashlib.sha256(d).hexdigest()[:12]
bad = []
with open(os.path.join(a, "images", "pc"), "wb") as f:
    f.write(img(0))
held = open(os.path.join(b, "images", "pc"), "rb")
first = held.read(100)
for n in range(1, 9):
    old = img(n - 1)
    for view in ("images", "runtime/images"):
        read(os.path.join(b, view, "pc"))   # warm: b's page cache holds n - 1
    with open(os.path.join(a, "images", "pc"), "wb") as f:
        f.write(img(n))
    for view in ("images", "runtime/images"):
        p = os.path.join(b, view, "pc")     # close-to-open: no wait
        got = read(p)
        if got != img(n):
            bad.append("b/%s after a's image %d: %d bytes, sha256 %s (new %s, old %s)" % (
                view, n, len(got), sha(got), sha(img(n)), sha(old)))
        if os.stat(p).st_size != len(img(n)):
            bad.append("b/%s after a's image %d: size %d" % (view, n, os.stat(p).st_size))
if first + held.read() != img(0):
    bad.append("b's held reader lost its image")
sys.stderr.write("".join(x + "\n" for x in bad))
sys.exit(1 if bad else 0)
EOF
	[ "$status" -eq 0 ] || fail "$output"
}

@test "pushed invalidation: a host that caches sees another's change within 2 s" {
	host a
	host b -o cache_timeout=60
	echo 1 >"$T/a/kv/x"
	size_is "$T/b/kv/x" 2
	[ "$(ls1 "$T/b/kv")" = x ]
	echo 12345 >"$T/a/kv/x"
	within 2 size_is "$T/b/kv/x" 6
	echo 1 >"$T/a/kv/y"
	within 2 eval '[ "$(ls1 "$T/b/kv")" = "x
y" ]'
	rm "$T/a/kv/x"
	within 2 eval '[ "$(pyop stat "$T/b/kv/x")" = ENOENT ]'
}

@test "pushed invalidation: a name made at its close with nothing written reaches a host that caches" {
	host a -o cache_timeout=60
	host b -o cache_timeout=60
	echo 1 >"$T/a/kv/x"
	# b caches a listing made while a's new file is open and waits for
	# its value; a closes it with nothing written, which makes the name:
	# b is told.
	exec 5>"$T/a/kv/t"
	[ "$(ls1 "$T/b/kv")" = x ]
	exec 5>&-
	within 2 eval '[ "$(ls1 "$T/b/kv")" = "t
x" ]'
}

@test "a host that caches answers for a directory from memory: its own creates at once, with the database's times; another host's changes within 2 s" {
	host a -o cache_timeout=60
	host b
	mkdir "$T/a/kv/d"
	local i
	# After its first misses in d, a knows every name there.
	for i in 1 2 3 4 5; do
		echo "$i" >"$T/a/kv/d/f$i"
		[ "$(cat "$T/a/kv/d/f$i")" = "$i" ] || fail "a cannot read f$i"
		[ "$(stat -c '%Y %y %z' "$T/a/kv/d")" = \
			"$(stat -c '%Y %y %z' "$T/b/kv/d")" ] ||
			fail "after f$i, d's times differ: a $(stat -c '%y %z' "$T/a/kv/d"), b $(stat -c '%y %z' "$T/b/kv/d")"
	done
	[ "$(cat "$T/b/kv/d/f5")" = 5 ]
	echo 7 >"$T/b/kv/d/g"
	within 2 eval '[ "$(cat "$T/a/kv/d/g" 2>/dev/null)" = 7 ]'
	[ "$(ls1 "$T/a/kv/d" | tr '\n' ' ')" = "f1 f2 f3 f4 f5 g " ]
	rm "$T/b/kv/d/f1"
	within 2 eval '[ "$(pyop stat "$T/a/kv/d/f1")" = ENOENT ]'
	echo 8 >"$T/a/kv/d/f1"
	[ "$(cat "$T/b/kv/d/f1")" = 8 ]
	mv "$T/b/kv/d/f2" "$T/b/kv/d/h"
	within 2 eval '[ "$(cat "$T/a/kv/d/h" 2>/dev/null)" = 2 ]'
	rm -r "$T/b/kv/d"
	within 2 eval '[ "$(pyop stat "$T/a/kv/d")" = ENOENT ]'
	run sh -c "echo 1 >'$T/a/kv/d/new'"
	[ "$status" -ne 0 ]
	mkdir "$T/b/kv/d"
	echo 9 >"$T/b/kv/d/f3"
	within 2 eval '[ "$(cat "$T/a/kv/d/f3" 2>/dev/null)" = 9 ]'
}

@test "a lost LISTEN connection reconnects and drops every cache" {
	host a
	host b -o cache_timeout=60
	echo 1 >"$T/a/kv/x"
	size_is "$T/b/kv/x" 2
	pg_sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'dsfs listen'" >/dev/null
	echo 123 >"$T/a/kv/x"
	within 2 size_is "$T/b/kv/x" 4
	echo 12345 >"$T/a/kv/x"
	within 2 size_is "$T/b/kv/x" 6
}

@test "a factory reset on one host reaches the others" {
	host a
	host b -o cache_timeout=60
	echo 1 >"$T/a/kv/x"
	size_is "$T/b/kv/x" 2
	tmo "$DSFSCTL" factory-reset "$T/a.store"
	within 2 eval '[ "$(pyop stat "$T/b/kv/x")" = ENOENT ]'
	[ "$(ls1 "$T/b/kv")" = "" ]
}

@test "dsfsctl on a host where the store is not mounted: its changes reach the mounted hosts" {
	host a
	host b -o cache_timeout=60
	host c
	STORE=$T/c.store MNT=$T/c unmount_dsfs
	echo 1 >"$T/a/kv/x"
	size_is "$T/b/kv/x" 2
	tmo "$DSFSCTL" set "$T/c.store" kv/x 12345
	within 2 size_is "$T/b/kv/x" 5
	[ "$(cat "$T/b/kv/x")" = 12345 ]
	# dsfsctl exits right after its change: the notice still goes out
	local i v
	for i in 1 2 3 4 5 6 7 8 9 10; do
		v=$((10 ** (i + 4) + i))
		tmo "$DSFSCTL" set "$T/c.store" kv/x "$v"
		within 2 size_is "$T/b/kv/x" ${#v} ||
			fail "set $i: b still has the size before it"
	done
	tmo "$DSFSCTL" factory-reset "$T/c.store"
	within 2 eval '[ "$(pyop stat "$T/b/kv/x")" = ENOENT ]'
}
