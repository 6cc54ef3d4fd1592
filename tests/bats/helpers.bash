# helpers.bash - what every dsfs mount test shares; each suite does
# "load helpers".
#
# Every test owns a temporary directory $T that holds its store ($STORE),
# its mount point ($MNT) and any scratch files, so that suites can run in
# parallel (make -j).  setup_store makes it, mount_dsfs mounts, and
# teardown_store -- which every suite's teardown calls, so it runs even when
# the test failed -- unmounts, makes sure no daemon of this store is left
# and removes $T.
#
# The mount tests never skip: if /dev/fuse cannot be used or the mount does
# not appear, mount_dsfs fails the test and says why.  Anything that could
# hang on a deadlocked daemon runs under timeout(1), and bats itself stops a
# test after $BATS_TEST_TIMEOUT seconds, so a hang fails instead of blocking
# CI.
#
# The programs under test come from $DSFS and $DSFSCTL (make check sets
# them), by default the ones built in src/ of this tree.

DSFS=${DSFS:-$BATS_TEST_DIRNAME/../../src/dsfs}
DSFSCTL=${DSFSCTL:-$BATS_TEST_DIRNAME/../../src/dsfsctl}
export DSFS DSFSCTL

# A system python: tests also run it as nobody, who cannot use a python
# installed under /root (pyenv and the like).
if [ -z "${PYTHON:-}" ]; then
	if [ -x /usr/bin/python3 ]; then
		PYTHON=/usr/bin/python3
	else
		PYTHON=$(command -v python3 || echo python3)
	fi
fi
export PYTHON

# Seconds an operation on the mount may take before it counts as a hang.
OP_TIMEOUT=${OP_TIMEOUT:-60}
# The watchdog of bats (>= 1.7) for a whole test, teardown excluded.
: "${BATS_TEST_TIMEOUT:=600}"

# ---------------------------------------------------------------- failing

# Prints its arguments on stderr (shown by bats for a failed test) and
# fails.
fail()
{
	printf '%s\n' "$*" >&2
	return 1
}

# ------------------------------------------------------------ the store

setup_store()
{
	T=$(mktemp -d "${TMPDIR:-/tmp}/dsfs-bats.XXXXXXXX") ||
		fail "mktemp -d failed" || return 1
	# Other users (metadata tests run commands as nobody) must be able to
	# reach the mount point; the store itself is made 0700 by dsfs.
	chmod 0755 "$T"
	STORE=$T/store
	MNT=$T/mnt
	mkdir "$MNT"
	export T STORE MNT
	runtime_setup
}

# True if $1 is a mount point in /proc/self/mounts, even one whose daemon
# has died (where mountpoint(1) cannot stat it).
is_mounted()
{
	awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' \
		/proc/self/mounts
}

# The pids of the dsfs daemons serving $STORE: processes whose program is
# named dsfs and that have the store among their arguments.
daemon_pids()
{
	local store=${STORE:-} d arg
	local -a args
	[ -n "$store" ] || return 0
	for d in /proc/[0-9]*; do
		args=()
		{ mapfile -d '' -t args <"$d/cmdline"; } 2>/dev/null || continue
		[ ${#args[@]} -ge 3 ] || continue
		[ "${args[0]##*/}" = dsfs ] || continue
		for arg in "${args[@]:1}"; do
			if [ "$arg" = "$store" ] || [ "$arg" = "$store/" ]; then
				echo "${d#/proc/}"
				break
			fi
		done
	done
}

# stuck_report PID...: where the processes given, their children, and the
# threads of $STORE's daemons wait (kernel stacks as root; the daemons'
# own stacks too where gdb is installed), for the message of a test that
# found one of them stuck.
stuck_report()
{
	local p t
	for p in "$@" $(for p in "$@"; do pgrep -P "$p"; done); do
		echo "process $p: $(ps -o stat=,wchan:32=,args= -p "$p" 2>/dev/null)"
		sed 's/^/    /' "/proc/$p/stack" 2>/dev/null
	done
	for p in $(daemon_pids); do
		for t in /proc/"$p"/task/*; do
			echo "daemon $p thread ${t##*/} ($(cat "$t/comm" 2>/dev/null)):" \
				"$(cat "$t/wchan" 2>/dev/null)"
			sed 's/^/    /' "$t/stack" 2>/dev/null
		done
		if command -v gdb >/dev/null; then
			timeout 60 gdb -p "$p" -batch -ex 'thread apply all bt' \
				2>&1 </dev/null | grep '^Thread\|^#'
		fi
	done
}

# Waits up to $1 seconds for the daemons of $STORE to be gone.
wait_daemon_gone()
{
	local tries=$((${1:-10} * 10))
	while [ -n "$(daemon_pids)" ]; do
		tries=$((tries - 1))
		[ $tries -gt 0 ] || return 1
		sleep 0.1
	done
}

# Fails, saying why, unless /dev/fuse is a character device this process
# can open for reading and writing.
check_fuse()
{
	[ -c /dev/fuse ] ||
		fail "FATAL: /dev/fuse is missing: the mount tests cannot run (modprobe fuse?)" ||
		return 1
	(: <>/dev/fuse) 2>/dev/null ||
		fail "FATAL: /dev/fuse cannot be opened read-write: the mount tests cannot run ($(ls -l /dev/fuse))" ||
		return 1
	command -v fusermount3 >/dev/null ||
		fail "FATAL: fusermount3 is missing (apt-get install fuse3)" ||
		return 1
}

# mount_dsfs [dsfs options...]: mounts $STORE on $MNT and waits until the
# mount is there.  dsfs detaches once the mount is ready; its stderr (the
# reasons of a refusal) is kept in $T/dsfs.err and shown on failure.
mount_dsfs()
{
	local rc tries
	local -a rt
	mapfile -t rt < <(runtime_args "$@")
	check_fuse || return 1
	[ -x "$DSFS" ] || fail "FATAL: $DSFS is not an executable: build dsfs first" ||
		return 1
	# The daemon must not inherit bats' descriptors 3 and 4, or bats
	# would wait for it to close them.
	timeout "$OP_TIMEOUT" "$DSFS" "${rt[@]}" "$@" "$STORE" "$MNT" \
		</dev/null >"$T/dsfs.out" 2>"$T/dsfs.err" 3>&- 4>&-
	rc=$?
	if [ $rc -ne 0 ]; then
		fail "dsfs $* $STORE $MNT failed with status $rc:" \
			"$(cat "$T/dsfs.err" "$T/dsfs.out")"
		return 1
	fi
	tries=100
	until mountpoint -q "$MNT"; do
		tries=$((tries - 1))
		if [ $tries -le 0 ]; then
			fail "dsfs returned 0 but $MNT is not a mount point after 10s:" \
				"$(cat "$T/dsfs.err")"
			return 1
		fi
		sleep 0.1
	done
}

# mount_dsfs_fg [dsfs options...]: mounts $STORE on $MNT with dsfs -f in
# the background of this shell, its log lines appended to $T/log (where a
# test looks for the line naming a path and a reason), and waits for the
# mount.
mount_dsfs_fg()
{
	local tries=100
	local -a rt
	mapfile -t rt < <(runtime_args "$@")
	check_fuse || return 1
	"$DSFS" -f "${rt[@]}" "$@" "$STORE" "$MNT" </dev/null >>"$T/log" 2>&1 3>&- 4>&- &
	until mountpoint -q "$MNT"; do
		tries=$((tries - 1))
		[ $tries -gt 0 ] ||
			fail "dsfs -f did not mount $MNT within 10s: $(cat "$T/log")" ||
			return 1
		sleep 0.1
	done
}

# unmount_dsfs: unmounts $MNT (retrying while it is busy, then lazily) and
# waits for the daemon to exit, killing it if it does not.  Succeeds when
# nothing was mounted.
unmount_dsfs()
{
	local tries pids
	[ -n "${MNT:-}" ] || return 0
	tries=50
	while is_mounted "$MNT"; do
		timeout "$OP_TIMEOUT" fusermount3 -u "$MNT" 2>/dev/null && break
		tries=$((tries - 1))
		if [ $tries -le 0 ]; then
			echo "unmount_dsfs: $MNT stays busy; unmounting lazily" >&2
			fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT"
			break
		fi
		sleep 0.1
	done
	if ! wait_daemon_gone 20; then
		pids=$(daemon_pids)
		echo "unmount_dsfs: daemon $pids of $STORE did not exit; killing it" >&2
		# shellcheck disable=SC2086 # a list of pids
		[ -z "$pids" ] || kill -9 $pids 2>/dev/null
		wait_daemon_gone 10
	fi
	! is_mounted "$MNT"
}

# remount_dsfs [options...]: unmount, then mount again.
remount_dsfs()
{
	unmount_dsfs || return 1
	mount_dsfs "$@"
}

# kill_daemon: kill -9 the daemon serving $STORE and wait for it to die.
# The mount is left behind, dead: unmount_dsfs clears it.
kill_daemon()
{
	local pids
	pids=$(daemon_pids)
	[ -n "$pids" ] || fail "kill_daemon: no dsfs daemon serves $STORE" ||
		return 1
	# shellcheck disable=SC2086 # a list of pids
	kill -9 $pids
	wait_daemon_gone 10 || fail "kill_daemon: $pids still alive" || return 1
}

# teardown_store: unmount, kill what is left, remove $T.  Safe to call
# whatever state the test left behind.
teardown_store()
{
	[ -n "${T:-}" ] || return 0
	unmount_dsfs || true
	if [ -n "$(daemon_pids)" ]; then
		# shellcheck disable=SC2046
		kill -9 $(daemon_pids) 2>/dev/null
		wait_daemon_gone 10 || true
	fi
	if is_mounted "$MNT"; then
		umount -l "$MNT" 2>/dev/null || true
	fi
	rm -rf --one-file-system "$T" 2>/dev/null || true
	T=
}

# make_factory SRCDIR: builds $STORE/factory.db from SRCDIR (laid out like
# the mount: kv/..., devices/ID/..., images/...).  Call before mounting.
make_factory()
{
	local out
	[ -x "$DSFSCTL" ] || fail "FATAL: $DSFSCTL is not an executable: build dsfsctl first" ||
		return 1
	mkdir -p "$STORE"
	out=$(timeout "$OP_TIMEOUT" "$DSFSCTL" mkfactory "$1" "$STORE/factory.db" 2>&1 3>&- 4>&-) ||
		fail "dsfsctl mkfactory $1 $STORE/factory.db failed: $out" ||
		return 1
	[ -f "$STORE/factory.db" ] ||
		fail "dsfsctl mkfactory did not write $STORE/factory.db" || return 1
}

# ------------------------------------------------------------- operations

# pyop OP ARGS...: performs one system call (or a short fixed sequence)
# with python and prints OK, the value read, or the errno name (EINVAL,
# ENOSPC, ...).  Exit status 0 unless python itself failed.  Byte strings
# are taken from the arguments as they are (no decoding).
DSFS_PYOPS='
import errno, os, stat, sys
op, a = sys.argv[1], [os.fsencode(x) for x in sys.argv[2:]]
out = sys.stdout.buffer
def res(x=None):
    out.write(b"OK\n" if x is None else x)
try:
    if op == "mkdir": os.mkdir(a[0]); res()
    elif op == "rmdir": os.rmdir(a[0]); res()
    elif op == "unlink": os.unlink(a[0]); res()
    elif op == "rename": os.rename(a[0], a[1]); res()
    elif op == "symlink": os.symlink(a[0], a[1]); res()
    elif op == "link": os.link(a[0], a[1]); res()
    elif op == "mknod": os.mknod(a[0], stat.S_IFCHR | 0o600, os.makedev(1, 3)); res()
    elif op == "mknod_reg": os.mknod(a[0], stat.S_IFREG | 0o600); res()
    elif op == "mkfifo": os.mkfifo(a[0]); res()
    elif op == "chmod": os.chmod(a[0], int(a[1], 8)); res()
    elif op == "chown": os.chown(a[0], int(a[1]), int(a[2])); res()
    elif op == "utime": os.utime(a[0], (int(a[1]), int(a[1]))); res()
    elif op == "truncate": os.truncate(a[0], int(a[1])); res()
    elif op == "create":
        fd = os.open(a[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd); res()
    elif op == "read":
        with open(a[0], "rb") as f: res(f.read())
    elif op == "open_rdonly":
        os.close(os.open(a[0], os.O_RDONLY)); res()
    elif op == "open_wronly":
        os.close(os.open(a[0], os.O_WRONLY)); res()
    elif op in ("write", "append", "write_from"):
        flags = os.O_WRONLY | os.O_CREAT
        flags |= os.O_APPEND if op == "append" else os.O_TRUNC
        data = open(a[1], "rb").read() if op == "write_from" else a[1]
        fd = os.open(a[0], flags, 0o644)
        try:
            os.write(fd, data)
        except OSError:
            os.close(fd)
            raise
        os.close(fd); res()
    elif op == "write_steps":
        # Reports each step: open, every write (one per argument), close.
        steps = []
        try:
            fd = os.open(a[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as e:
            res(("open=%s\n" % errno.errorcode[e.errno]).encode()); sys.exit(0)
        for chunk in a[1:]:
            try:
                os.write(fd, chunk); steps.append("write=OK")
            except OSError as e:
                steps.append("write=" + errno.errorcode[e.errno])
        try:
            os.close(fd); steps.append("close=OK")
        except OSError as e:
            steps.append("close=" + errno.errorcode[e.errno])
        res((" ".join(steps) + "\n").encode())
    elif op == "getxattr": res(os.getxattr(a[0], a[1]) + b"\n")
    elif op == "setxattr": os.setxattr(a[0], a[1], a[2]); res()
    elif op == "removexattr": os.removexattr(a[0], a[1]); res()
    elif op == "listdir":
        res(b"".join(n + b"\n" for n in sorted(os.listdir(a[0]))))
    elif op == "stat": os.stat(a[0]); res()
    else:
        sys.exit("pyop: unknown operation " + op)
except OSError as e:
    res((errno.errorcode.get(e.errno, str(e.errno)) + "\n").encode())
'

pyop()
{
	timeout "$OP_TIMEOUT" "$PYTHON" -c "$DSFS_PYOPS" "$@"
}

# assert_errno OP ARGS... EXPECTED: performs OP with pyop and fails unless
# it reports EXPECTED (an errno name such as EROFS, or OK).
assert_errno()
{
	local want=${!#} got
	local -a cmd=("${@:1:$#-1}")
	got=$(pyop "${cmd[@]}") || fail "pyop ${cmd[*]} failed: $got" ||
		return 1
	[ "$got" = "$want" ] ||
		fail "pyop ${cmd[*]}: expected $want, got '$got'" || return 1
}

# assert_content FILE EXPECTED: the file's bytes are EXPECTED followed by
# nothing else (compared byte for byte, trailing newlines included).
assert_content()
{
	local f=$1 want=$2 exp
	exp=$T/expected.$$.$RANDOM
	printf '%s' "$want" >"$exp"
	if ! timeout "$OP_TIMEOUT" cmp -s "$exp" "$f"; then
		fail "$f: expected $(od -c <"$exp" | head -5)" \
			"got $(timeout "$OP_TIMEOUT" od -c <"$f" 2>&1 | head -5)"
		rm -f "$exp"
		return 1
	fi
	rm -f "$exp"
}

# xattr FILE NAME: the value of extended attribute NAME, or the errno.
xattr()
{
	pyop getxattr "$1" "$2"
}

# ls1 DIR: the names in DIR, one per line, sorted (bytes order).
ls1()
{
	pyop listdir "$1"
}

# tmo CMD...: runs CMD under the operation timeout.
tmo()
{
	timeout "$OP_TIMEOUT" "$@"
}

# ------------------------------------------------------- runtime backends
#
# The runtime layer a mount uses comes from $DSFS_RUNTIME, passed to dsfs
# as -o runtime=$DSFS_RUNTIME by mount_dsfs unless the test gives its own
# runtime= option; empty means dsfs's default (sqlite).
#
# DSFS_TEST_RUNTIME=postgresql runs a whole suite on a PostgreSQL runtime:
# tests/bats/on-postgresql (what make check runs the second time) starts
# one server for the file and exports its directory as $DSFS_TEST_PG_DIR;
# every test then gets a database of its own (setup_store), so that tests
# do not see each other's entries.  A check of STORE/runtime.db itself is
# made only when ${DSFS_TEST_RUNTIME:-sqlite} is sqlite.
#
# pg.bats starts its own server in setup_file with pg_server_start and
# stops it in teardown_file with pg_server_stop.  A server that cannot be
# started fails the test with its log: never a skip.

PG_SERVER_SH=${PG_SERVER_SH:-$BATS_TEST_DIRNAME/../pg_server.sh}

# pg_server_start: start a server in a new directory of its own, readable
# by the postgres user (bats' own temporary directories are not), and
# export PG_DIR (the directory, also the socket's) and PG_URI (the
# database "dsfs").
pg_server_start()
{
	local out
	PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/dsfs-pg.XXXXXX") ||
		fail "mktemp -d failed" || return 1
	chmod 0755 "$PG_DIR"
	out=$("$PG_SERVER_SH" start "$PG_DIR/s" 2>&1) ||
		fail "FATAL: PostgreSQL could not be started: $out" || return 1
	PG_DIR=$PG_DIR/s
	PG_URI=$("$PG_SERVER_SH" uri "$PG_DIR")
	export PG_DIR PG_URI
}

# pg_server_stop: stop the server of pg_server_start and remove its
# directory.
pg_server_stop()
{
	[ -n "${PG_DIR:-}" ] || return 0
	"$PG_SERVER_SH" stop "$PG_DIR" || true
	rm -rf "${PG_DIR%/s}"
	PG_DIR=
}

# pg_sql SQL: run SQL in the database of $PG_URI as the superuser and
# print the rows, one per line, fields separated by '|'.
pg_sql()
{
	local db=${PG_DB:-dsfs}
	tmo runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 \
		-h "$PG_DIR" -U postgres -d "$db" -c "$1"
}

# pg_new_database NAME: create the database NAME on the server of $PG_DIR
# and print its URI.
pg_new_database()
{
	PG_DB=postgres pg_sql "CREATE DATABASE $1" >/dev/null ||
		fail "CREATE DATABASE $1 failed" || return 1
	echo "postgresql:///$1?host=$PG_DIR&user=postgres"
}

# runtime_setup: called by setup_store; under DSFS_TEST_RUNTIME, points
# $DSFS_RUNTIME at a fresh runtime for this test.
runtime_setup()
{
	case ${DSFS_TEST_RUNTIME:-} in
	'' | sqlite) ;;
	memory) DSFS_RUNTIME=memory ;;
	postgresql)
		[ -n "${DSFS_TEST_PG_DIR:-}" ] ||
			fail "FATAL: DSFS_TEST_RUNTIME=postgresql without a server (run the suite through tests/bats/on-postgresql)" ||
			return 1
		PG_DIR=$DSFS_TEST_PG_DIR
		PG_DB=t_${BATS_TEST_NUMBER}_$$
		DSFS_RUNTIME=$(pg_new_database "$PG_DB") || return 1
		PG_URI=$DSFS_RUNTIME
		export PG_DIR PG_DB PG_URI
		;;
	*) fail "FATAL: DSFS_TEST_RUNTIME=$DSFS_TEST_RUNTIME: not sqlite, memory or postgresql" ||
		return 1 ;;
	esac
	export DSFS_RUNTIME
}

# runtime_args ARGS...: the -o runtime=$DSFS_RUNTIME to add to a dsfs
# command line, unless ARGS already choose a runtime.
runtime_args()
{
	local a
	[ -n "${DSFS_RUNTIME:-}" ] || return 0
	for a in "$@"; do
		case $a in *runtime=*) return 0 ;; esac
	done
	printf '%s\n' -o "runtime=$DSFS_RUNTIME"
	# A suite run again with more options (tests/bats/on-postgresql):
	# given before the test's own, which win.
	[ -z "${DSFS_TEST_OPTS:-}" ] || printf '%s\n' -o "$DSFS_TEST_OPTS"
}
