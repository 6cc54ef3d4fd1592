#!/usr/bin/env bats
# durability.bats - what survives: a value whose close returned survives a
# kill -9 of the daemon and a remount; nothing half-written shows after a
# restart; the ephemeral layer does not survive; a damaged or foreign
# runtime database is refused at mount and left untouched.

load helpers

setup()
{
	setup_store
}

teardown()
{
	if [ -n "${T:-}" ] && [ -s "$T/writers" ]; then
		# shellcheck disable=SC2046 # the power-loss test's writers
		kill $(cat "$T/writers") 2>/dev/null || true
	fi
	unmount_copy || true
	teardown_store
}

# crash_and_remount: kill -9 the daemon, clear the dead mount, mount
# again.
crash_and_remount()
{
	kill_daemon || return 1
	is_mounted "$MNT" || fail "the dead mount vanished by itself?" || return 1
	unmount_dsfs || fail "cannot clear the dead mount $MNT" || return 1
	mount_dsfs
}

@test "a closed value survives kill -9 of the daemon" {
	mount_dsfs
	printf '{"volume": 7}\n' >"$T/v"
	cp "$T/v" "$MNT/kv/settings"
	crash_and_remount
	tmo cmp "$T/v" "$MNT/kv/settings"
}

@test "a file created and closed with nothing written survives kill -9, as do files created beside one still open" {
	mount_dsfs
	touch "$MNT/kv/empty"
	: >"$MNT/images/blank"
	python3 -c '
import os, sys
mnt = sys.argv[1]
# One file stays open (created, not written) while others are created,
# written and closed, and one is refused: the closes that returned keep
# their files; the one still open at the crash may go.
held = os.open(mnt + "/kv/held", os.O_CREAT | os.O_WRONLY, 0o644)
for i in range(3):
    fd = os.open(mnt + "/kv/w%d" % i, os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"[%d]" % i)
    os.close(fd)
fd = os.open(mnt + "/kv/bad", os.O_CREAT | os.O_WRONLY, 0o644)
try:
    os.write(fd, b"{oops")
except OSError:
    pass
try:
    os.close(fd)
except OSError:
    pass
sys.stdout.flush()
os.kill(int(sys.argv[2]), 9)
' "$MNT" "$(daemon_pids)"
	wait_daemon_gone 10 || fail "the daemon outlived its SIGKILL"
	unmount_dsfs || fail "cannot clear the dead mount $MNT"
	mount_dsfs
	assert_content "$MNT/kv/empty" ""
	assert_content "$MNT/images/blank" ""
	for i in 0 1 2; do
		assert_content "$MNT/kv/w$i" "[$i]"
	done
	# A refused value leaves the empty file its create made.
	assert_content "$MNT/kv/bad" ""
}

@test "many values, directories, overwrites and removals survive kill -9" {
	mount_dsfs
	local i
	mkdir -p "$MNT/kv/a/b"
	for i in $(seq 50); do
		echo "[$i]" >"$MNT/kv/a/b/v$i"
	done
	echo '"first"' >"$MNT/kv/over"
	echo '"second"' >"$MNT/kv/over"
	echo 1 >"$MNT/kv/gone"
	rm "$MNT/kv/gone"
	mkdir "$MNT/kv/gonedir"
	rmdir "$MNT/kv/gonedir"
	echo '"moved"' >"$MNT/kv/from"
	mv "$MNT/kv/from" "$MNT/kv/to"
	crash_and_remount
	for i in $(seq 50); do
		assert_content "$MNT/kv/a/b/v$i" "[$i]"$'\n'
	done
	[ "$(ls "$MNT/kv/a/b" | wc -l)" = 50 ]
	assert_content "$MNT/kv/over" $'"second"\n'
	[ "$(ls1 "$MNT/kv")" = "$(printf '%s\n' a over to)" ]
	assert_content "$MNT/kv/to" $'"moved"\n'
}

@test "values survive kill -9 after sync and after fsync" {
	mount_dsfs
	echo '"synced"' >"$MNT/kv/s"
	sync
	run tmo "$PYTHON" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"\"fsynced\"")
os.fsync(fd)
os.close(fd)
' "$MNT/kv/f"
	[ "$status" -eq 0 ]
	tmo sync -f "$MNT/kv/s"
	crash_and_remount
	assert_content "$MNT/kv/s" $'"synced"\n'
	assert_content "$MNT/kv/f" '"fsynced"'
}

@test "a value still open for writing at the crash is not half there: the old value stays" {
	mount_dsfs
	echo '{"v": "old"}' >"$MNT/kv/x"
	# The writer writes a new value and is stopped before closing.
	"$PYTHON" -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"{\"v\": \"new, never closed\"}")
open(sys.argv[2], "w").close()
time.sleep(120)
' "$MNT/kv/x" "$T/written" 3>&- 4>&- &
	local writer=$! tries=100
	until [ -e "$T/written" ]; do
		tries=$((tries - 1))
		[ $tries -gt 0 ] || fail "the writer did not write"
		sleep 0.1
	done
	kill_daemon
	kill -9 "$writer" 2>/dev/null || true
	wait "$writer" 2>/dev/null || true
	unmount_dsfs
	mount_dsfs
	assert_content "$MNT/kv/x" $'{"v": "old"}\n'
}

@test "the ephemeral layer is lost at a crash; runtime is not" {
	mount_dsfs
	echo '"r"' >"$MNT/kv/k"
	echo '"e"' >"$MNT/ephemeral/kv/k"
	echo '"e"' >"$MNT/ephemeral/kv/only"
	assert_content "$MNT/kv/k" $'"e"\n'
	crash_and_remount
	assert_content "$MNT/kv/k" $'"r"\n'
	[ ! -e "$MNT/kv/only" ]
	[ -z "$(ls -A "$MNT/ephemeral/kv")" ]
}

@test "values survive repeated unmount and remount" {
	mount_dsfs
	local i
	for i in 1 2 3; do
		echo "$i" >"$MNT/kv/k$i"
		remount_dsfs
	done
	for i in 1 2 3; do
		assert_content "$MNT/kv/k$i" "$i"$'\n'
	done
}

@test "after kill -9 the store can be mounted again (its lock died with the daemon)" {
	mount_dsfs
	echo 1 >"$MNT/kv/a"
	kill_daemon
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
	mount_dsfs
	assert_content "$MNT/kv/a" $'1\n'
}

@test "a damaged runtime.db is refused at mount and left byte for byte untouched" {
	mkdir -m 0700 "$STORE"
	head -c 65536 /dev/urandom >"$STORE/runtime.db"
	chmod 600 "$STORE/runtime.db"
	cp -p "$STORE/runtime.db" "$T/orig.db"
	run tmo "$DSFS" "$STORE" "$MNT" 3>&- 4>&-
	if mountpoint -q "$MNT"; then
		fail "a damaged runtime.db was mounted"
	fi
	[ "$status" -ne 0 ]
	[ -n "$output" ] || fail "no message on stderr"
	[[ "$output" == *runtime.db* ]] || fail "the message does not name runtime.db: $output"
	tmo cmp "$T/orig.db" "$STORE/runtime.db"
	[ "$(stat -c %Y "$STORE/runtime.db")" = "$(stat -c %Y "$T/orig.db")" ]
}

@test "a foreign SQLite database as runtime.db is refused and left untouched" {
	mkdir -m 0700 "$STORE"
	"$PYTHON" -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("create table customers (id integer primary key, name text)")
c.execute("insert into customers (name) values (?)", ("alice",))
c.commit()
c.close()
' "$STORE/runtime.db"
	cp -p "$STORE/runtime.db" "$T/orig.db"
	run tmo "$DSFS" "$STORE" "$MNT" 3>&- 4>&-
	if mountpoint -q "$MNT"; then
		fail "a foreign runtime.db was mounted"
	fi
	[ "$status" -ne 0 ]
	[[ "$output" == *runtime.db* ]] || fail "the message does not name runtime.db: $output"
	tmo cmp "$T/orig.db" "$STORE/runtime.db"
	[ "$(stat -c %Y "$STORE/runtime.db")" = "$(stat -c %Y "$T/orig.db")" ]
}

@test "a text file as runtime.db is refused and left untouched" {
	mkdir -m 0700 "$STORE"
	printf 'this is not a database\n' >"$STORE/runtime.db"
	cp -p "$STORE/runtime.db" "$T/orig.db"
	run tmo "$DSFS" "$STORE" "$MNT" 3>&- 4>&-
	if mountpoint -q "$MNT"; then fail "a text file was mounted as runtime.db"; fi
	[ "$status" -ne 0 ]
	[ -n "$output" ]
	tmo cmp "$T/orig.db" "$STORE/runtime.db"
}

# ------------------------------------------------------------ power loss

# Writers, snapshot and checker of the power-loss test.  A writer writes
# values that are a function of (writer, key, counter), fsyncs each one
# and logs it only once fsync has returned.  A snapshot stops the daemon
# (SIGSTOP, every thread), notes the time, copies the store's files as
# they are at that moment and lets the daemon go on.  The checker finds,
# in the copy, for every key, the last value logged before the snapshot
# or a later one of the same writer, byte for byte.
POWER_PY='
import json, os, signal, sys, time

def val(w, k, c):
    return ("{\"w\": %d, \"k\": \"%s\", \"c\": %d, \"pad\": \"%s\"}"
            % (w, k, c, "p" * (c * 37 % 6000))).encode()

KEYS = {0: ["a0", "a1", "a2"], 1: ["b0", "b1", "b2"]}

def write(mnt, logp, w):
    log = open(logp, "a", buffering=1)
    c = 0
    while True:
        c += 1
        k = KEYS[w][c % 3]
        fd = os.open(os.path.join(mnt, "kv", "power", k),
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, val(w, k, c))
            os.fsync(fd)
            log.write("%s %d %d %.9f\n" % (k, w, c, time.monotonic()))
        finally:
            os.close(fd)

def stopped(pid):
    for t in os.listdir("/proc/%d/task" % pid):
        st = open("/proc/%d/task/%s/stat" % (pid, t)).read()
        if st[st.rindex(")") + 2] not in "tT":
            return False
    return True

def snap(pid, store, dest):
    pid = int(pid)
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 20
        while not stopped(pid):
            if time.monotonic() > deadline:
                sys.exit("the daemon did not stop")
            time.sleep(0.001)
        t0 = time.monotonic()
        os.makedirs(dest, mode=0o700)
        copied = []
        # What a power cut leaves of the store: the database, its WAL
        # and the WAL index (which SQLite rebuilds anyway).  Not the lock,
        # the socket or the space reserve: they belong to the live daemon.
        for f in ("runtime.db", "runtime.db-wal", "runtime.db-shm"):
            try:
                data = open(os.path.join(store, f), "rb").read()
            except FileNotFoundError:
                continue
            with open(os.path.join(dest, f), "wb") as out:
                out.write(data)
            os.chmod(os.path.join(dest, f), 0o600)
            copied.append("%s:%d" % (f, len(data)))
    finally:
        os.kill(pid, signal.SIGCONT)
    print("%.9f %s" % (t0, " ".join(copied)))

def check(mnt, logdir, t0):
    t0 = float(t0)
    want, n = {}, 0
    for w in KEYS:
        p = os.path.join(logdir, "w%d.log" % w)
        for line in open(p):
            f = line.split()
            if len(f) != 4 or float(f[3]) >= t0:
                continue
            k, c = f[0], int(f[2])
            want[k] = max(want.get(k, 0), c)
            n += 1
    bad = []
    for w, ks in KEYS.items():
        for k in ks:
            if k not in want:
                continue
            try:
                data = open(os.path.join(mnt, "kv", "power", k), "rb").read()
                c = json.loads(data)["c"]
            except Exception as e:
                bad.append("%s: %r" % (k, e))
                continue
            if data != val(w, k, c):
                bad.append("%s: #%d is not byte-exact" % (k, c))
            elif c < want[k]:
                bad.append("%s: holds #%d, #%d was fsynced before the copy"
                           % (k, c, want[k]))
    for b in bad:
        sys.stderr.write(b + "\n")
    print("%d %d" % (n, len(want)))
    return 1 if bad else 0

if __name__ == "__main__":
    op, a = sys.argv[1], sys.argv[2:]
    if op == "write":
        sys.exit(write(a[0], a[1], int(a[2])))
    if op == "snap":
        sys.exit(snap(a[0], a[1], a[2]))
    sys.exit(check(a[0], a[1], a[2]))
'

# The copy's second mount, cleaned up by teardown if the test fails.
unmount_copy()
{
	[ -n "${COPY_STORE:-}" ] || return 0
	STORE=$COPY_STORE MNT=$COPY_MNT unmount_dsfs
}

@test "power loss: copies of the store taken while writers fsync hold every fsynced value" {
	local rounds=${DSFS_POWER_ROUNDS:-6} r w pid t0 files out
	local checked=0 values=0 start=$SECONDS
	local -a wpids=()
	printf '%s' "$POWER_PY" >"$T/power.py"
	mount_dsfs
	mkdir "$MNT/kv/power"
	for w in 0 1; do
		"$PYTHON" "$T/power.py" write "$MNT" "$T/w$w.log" "$w" \
			2>"$T/w$w.err" 3>&- 4>&- &
		wpids+=($!)
		echo $! >>"$T/writers"
	done
	pid=$(daemon_pids)
	[ -n "$pid" ] || fail "no daemon"
	for r in $(seq "$rounds"); do
		# A random moment, 0.3 to 1.3 s into the round.
		sleep "$(printf '%d.%03d' $((RANDOM % 2)) $((300 + RANDOM % 700)))"
		for w in "${wpids[@]}"; do
			kill -0 "$w" 2>/dev/null ||
				fail "round $r: a writer died: $(cat "$T"/w*.err)"
		done
		run tmo "$PYTHON" "$T/power.py" snap "$pid" "$STORE" "$T/copy$r"
		[ "$status" -eq 0 ] || fail "round $r: snapshot: $output"
		read -r t0 files <<<"$output"
		[[ "$files" == *runtime.db-wal* ]] ||
			fail "round $r: no WAL in the store: $files"
		run tmo "$DSFSCTL" check "$T/copy$r" 3>&- 4>&-
		[ "$status" -eq 0 ] || fail "round $r: dsfsctl check of the copy: $output"
		COPY_STORE=$T/copy$r COPY_MNT=$T/mnt$r
		mkdir "$COPY_MNT"
		STORE=$COPY_STORE MNT=$COPY_MNT mount_dsfs ||
			fail "round $r: cannot mount the copy"
		run tmo "$PYTHON" "$T/power.py" check "$COPY_MNT" "$T" "$t0"
		[ "$status" -eq 0 ] || fail "round $r ($files): $output"
		read -r out w <<<"${lines[-1]}"
		values=$out
		checked=$((checked + w))
		unmount_copy || fail "round $r: cannot unmount the copy"
		COPY_STORE=
		rm -rf "$T/copy$r" "$T/mnt$r"
	done
	for w in "${wpids[@]}"; do
		kill "$w" 2>/dev/null
		wait "$w" 2>/dev/null || true
	done
	[ "$values" -gt 0 ] || fail "no value was ever fsynced"
	unmount_dsfs
	run tmo "$DSFSCTL" check "$STORE" 3>&- 4>&-
	[ "$status" -eq 0 ] || fail "dsfsctl check of the store: $output"
	echo "# power loss: $rounds copies mounted and checked, $checked keys" \
		"checked, $values fsynced values logged, $((SECONDS - start)) s" >&3
}
