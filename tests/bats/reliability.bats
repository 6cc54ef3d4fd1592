#!/usr/bin/env bats
# reliability.bats - dsfs under faults, hostile input and load (issue 5):
# crash storms (kill -9 at random moments while writers run), a full disk
# under the store, hostile values and names through the mount, and
# concurrent readers, writers, renamers, lockers and listers.
#
# Every test is time-bounded (tmo / timeout, and bats' own watchdog), so a
# deadlock fails instead of hanging.  Figures (cycles survived, values
# checked, inputs tried) are printed on bats' fd 3 as "# ..." lines, and
# appended to $DSFS_FIGURES if that is set.
#
# DSFS_CRASH_CYCLES (default 30) sets the number of crash cycles; a longer
# soak by hand: DSFS_CRASH_CYCLES=1000 bats tests/bats/reliability.bats

load helpers

setup()
{
	setup_store
}

teardown()
{
	teardown_store
	if [ -n "${SMALL:-}" ]; then
		if is_mounted "$SMALL"; then
			umount "$SMALL" 2>/dev/null || umount -l "$SMALL" 2>/dev/null || true
		fi
		rmdir "$SMALL" 2>/dev/null || true
		SMALL=
	fi
}

# figure TEXT: reports a figure for the README.
figure()
{
	echo "# $*" >&3
	if [ -n "${DSFS_FIGURES:-}" ]; then
		echo "$BATS_TEST_DESCRIPTION: $*" >>"$DSFS_FIGURES"
	fi
}

# -------------------------------------------------------------- crash storm

# The writers and the checker of the crash storm.  Every value is a
# deterministic function of (writer, counter, key), so the checker can
# rebuild it and compare byte for byte.
STORM_PY='
import errno, os, random, struct, sys, time, zlib

def png(w, c):
    def chunk(t, d):
        return (struct.pack(">I", len(d)) + t + d
                + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff))
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    text = b"dsfs\0" + ("%d %d " % (w, c)).encode() + b"p" * (c * 13 % 4000)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"tEXt", text)
            + chunk(b"IDAT", zlib.compress(b"\0\0")) + chunk(b"IEND", b""))

def js(w, k, c):
    return ("{\"w\": %d, \"k\": \"%s\", \"c\": %d, \"pad\": \"%s\"}\n"
            % (w, k, c, "x" * (c * 37 % 3000))).encode()

# Who writes what: writer -> (tree, keys).  Writers 2 and 3 share keys.
WRITERS = {
    0: ("kv/crash", ["a0", "a1", "a2"]),
    1: ("kv/crash", ["b0", "b1", "b2"]),
    2: ("kv/crash", ["s0", "s1", "s2"]),
    3: ("kv/crash", ["s0", "s1", "s2"]),
    4: ("images", ["storm0.png", "storm1.png", "storm2.png"]),
}
GONE = (errno.ENOTCONN, errno.ECONNABORTED, errno.EIO)

def write(mnt, logp, wid, c):
    tree, keys = WRITERS[wid]
    rnd = random.Random(wid * 7919 + c)
    log = open(logp, "a", buffering=1)
    while True:
        c += 1
        k = rnd.choice(keys)
        data = png(wid, c) if tree == "images" else js(wid, k, c)
        t0 = time.monotonic()
        try:
            fd = os.open(os.path.join(mnt, tree, k),
                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                half = len(data) // 2
                for part in (data[:half], data[half:]):
                    while part:
                        n = os.write(fd, part)
                        part = part[n:]
            finally:
                os.close(fd)
        except OSError as e:
            if e.errno in GONE:
                return 0
            sys.stderr.write("writer %d: %s %s: %s\n" % (wid, tree, k, e))
            return 2
        t1 = time.monotonic()
        # Only now is the value acknowledged.
        log.write("%s/%s %d %d %.9f %.9f\n" % (tree, k, wid, c, t0, t1))

def check(mnt, logdir):
    # key -> writer -> last acknowledged counter; key -> [(t0, t1, w, c)]
    last, acks, n = {}, {}, 0
    for wid in WRITERS:
        p = os.path.join(logdir, "w%d.log" % wid)
        if not os.path.exists(p):
            continue
        for line in open(p):
            f = line.split()
            if len(f) != 5:
                continue   # the last line of a killed writer may be cut
            key, w, c, t0, t1 = f[0], int(f[1]), int(f[2]), float(f[3]), float(f[4])
            last.setdefault(key, {})[w] = max(c, last.get(key, {}).get(w, -1))
            acks.setdefault(key, []).append((t0, t1, w, c))
            n += 1
    bad, keys = [], 0
    expected = {}
    for wid, (tree, ks) in WRITERS.items():
        for k in ks:
            expected.setdefault(tree + "/" + k, set()).add(wid)
    # No stray names, and every entry complete valid content.
    for tree in ("kv/crash", "images"):
        for name in os.listdir(os.path.join(mnt, tree)):
            if tree + "/" + name not in expected:
                bad.append("unexpected entry %s/%s" % (tree, name))
    for key, wids in sorted(expected.items()):
        path = os.path.join(mnt, key)
        try:
            data = open(path, "rb").read()
        except FileNotFoundError:
            if key in last:
                bad.append("%s: LOST (acknowledged: %s)" % (key, last[key]))
            continue
        keys += 1
        try:
            if key.startswith("images/"):
                i = data.index(b"dsfs\0") + 5
                w, c = [int(x) for x in data[i:i + 40].split(b" ")[:2]]
                want = png(w, c)
            else:
                import json
                v = json.loads(data)
                w, c = v["w"], v["c"]
                want = js(w, key.split("/")[-1], c)
        except Exception as e:
            bad.append("%s: not a complete valid value (%r): %r" % (key, e, data[:80]))
            continue
        if data != want:
            bad.append("%s: value of writer %d #%d is not byte-exact" % (key, w, c))
            continue
        if w not in wids:
            bad.append("%s: value of writer %d, who never writes it" % (key, w))
            continue
        lw = last.get(key, {}).get(w, -1)
        if c < lw:
            bad.append("%s: holds #%d of writer %d, but #%d was acknowledged"
                       % (key, c, w, lw))
        # The stored value, if it was acknowledged, must not be older than
        # a value whose writer opened the file after it was acknowledged.
        mine = [a for a in acks.get(key, []) if a[2] == w and a[3] == c]
        if mine:
            t1 = mine[0][1]
            later = [a for a in acks[key] if a[0] > t1]
            if later:
                bad.append("%s: holds #%d of writer %d, overwritten later by %r"
                           % (key, c, w, later[0]))
    print("%d %d" % (n, keys))
    for b in bad:
        sys.stderr.write(b + "\n")
    return 1 if bad else 0

if __name__ == "__main__":
    if sys.argv[1] == "write":
        sys.exit(write(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
    sys.exit(check(sys.argv[2], sys.argv[3]))
'

@test "crash storm: kill -9 at random moments under 5 writers loses nothing acknowledged" {
	local cycles=${DSFS_CRASH_CYCLES:-30} cycle w pids out delay acked=0 keys=0
	local start=$SECONDS
	printf '%s' "$STORM_PY" >"$T/storm.py"
	mkdir "$T/logs"
	mount_dsfs
	mkdir "$MNT/kv/crash"
	for cycle in $(seq "$cycles"); do
		pids=()
		for w in 0 1 2 3 4; do
			"$PYTHON" "$T/storm.py" write "$MNT" "$T/logs/w$w.log" "$w" \
				$((cycle * 1000000)) 2>>"$T/logs/w$w.err" 3>&- 4>&- &
			pids+=($!)
		done
		# A random moment between 0.2 and 1 s.
		delay=$(printf '0.%03d' $((200 + RANDOM % 800)))
		sleep "$delay"
		kill_daemon || fail "cycle $cycle: could not kill the daemon"
		for w in "${pids[@]}"; do
			# A writer stuck on the dead mount is a failure, not a hang.
			timeout 20 tail --pid="$w" -f /dev/null ||
				fail "cycle $cycle: writer $w did not stop after the crash"
			wait "$w" ||
				fail "cycle $cycle: a writer failed before the crash:" \
					"$(cat "$T"/logs/w*.err)"
		done
		unmount_dsfs || fail "cycle $cycle: cannot clear the dead mount"
		run tmo "$DSFSCTL" check "$STORE" 3>&- 4>&-
		[ "$status" -eq 0 ] ||
			fail "cycle $cycle: dsfsctl check failed ($status): $output"
		mount_dsfs
		run tmo "$PYTHON" "$T/storm.py" check "$MNT" "$T/logs"
		[ "$status" -eq 0 ] ||
			fail "cycle $cycle (killed after ${delay}s): $output"
		read -r acked out <<<"${lines[0]}"
		keys=$((keys + out))
	done
	[ "$acked" -gt 0 ] || fail "no write was ever acknowledged"
	unmount_dsfs
	run tmo "$DSFSCTL" check "$STORE" 3>&- 4>&-
	[ "$status" -eq 0 ] || fail "final dsfsctl check failed: $output"
	figure "crash storm: $cycles cycles survived, $acked acknowledged writes," \
		"$keys entries checked byte for byte, $((SECONDS - start)) s"
}

# ---------------------------------------------------------------- full disk

# small_disk SIZE: mounts a tmpfs of SIZE on $SMALL (root only).
small_disk()
{
	[ "$(id -u)" -eq 0 ] ||
		fail "FATAL: this test mounts a tmpfs and must run as root (it is not skipped)" ||
		return 1
	SMALL=$T.small
	mkdir "$SMALL"
	mount -t tmpfs -o size="$1" tmpfs "$SMALL" ||
		fail "FATAL: cannot mount a $1 tmpfs on $SMALL" || return 1
}

@test "full disk under the store: ENOSPC (never EIO), nothing damaged, writable again after rm" {
	small_disk 3M
	# A ballast file shares the disk: removing it is how space is freed.
	head -c 1M /dev/zero >"$SMALL/ballast"
	STORE=$SMALL/store
	mount_dsfs -o runtime_size=64M
	local out
	run tmo "$PYTHON" -c '
import errno, os, sys
mnt, okf = sys.argv[1], sys.argv[2]
ok = open(okf, "w")
for i in range(100000):
    data = ("{\"i\": %d, \"pad\": \"%s\"}" % (i, "%06d" % i * 1200)).encode()
    p = os.path.join(mnt, "kv", "v%05d" % i)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as e:
        print("%d %s" % (i, errno.errorcode.get(e.errno, e.errno)))
        sys.exit(0)
    ok.write("%d\n" % i); ok.flush()
print("never full")
' "$MNT" "$T/ok"
	[ "$status" -eq 0 ] || fail "writer failed: $output"
	local n err
	read -r n err <<<"$output"
	[ "$err" = ENOSPC ] || fail "the write at value $n failed with '$err', not ENOSPC: $output"
	[ "$n" -gt 10 ] || fail "only $n values fit on 3 MiB"
	# Everything acknowledged reads back exactly (the failed one may be
	# absent or empty, never partial).
	run tmo "$PYTHON" -c '
import os, sys
mnt, okf, failed = sys.argv[1], sys.argv[2], int(sys.argv[3])
n = 0
for line in open(okf):
    i = int(line)
    want = ("{\"i\": %d, \"pad\": \"%s\"}" % (i, "%06d" % i * 1200)).encode()
    got = open(os.path.join(mnt, "kv", "v%05d" % i), "rb").read()
    if got != want:
        sys.exit("v%05d: damaged (%d bytes)" % (i, len(got)))
    n += 1
p = os.path.join(mnt, "kv", "v%05d" % failed)
if os.path.exists(p) and open(p, "rb").read() not in (b"",):
    sys.exit("the refused value v%05d is there: %r" % (failed, open(p, "rb").read()[:60]))
print(n)
' "$MNT" "$T/ok" "$n"
	[ "$status" -eq 0 ] || fail "after ENOSPC: $output"
	local stored=$output
	# On a full disk, removing may itself need space (the journal): it
	# succeeds or fails with ENOSPC, never EIO, and damages nothing.
	out=$(pyop unlink "$MNT/kv/v00001")
	case $out in
	OK) ;;
	ENOSPC) assert_content "$MNT/kv/v00001" \
		"{\"i\": 1, \"pad\": \"$(printf '000001%.0s' $(seq 1200))\"}" ;;
	*) fail "unlink on a full disk: $out" ;;
	esac
	# Space is freed outside dsfs (the 1 MiB ballast): without
	# remounting, removing values (10) and writing (5) work again.
	rm -f "$SMALL/ballast"
	tmo "$PYTHON" -c '
import os, sys
for i in range(0, min(20, int(sys.argv[2])), 2):
    p = os.path.join(sys.argv[1], "kv", "v%05d" % i)
    if os.path.exists(p):
        os.unlink(p)
' "$MNT" "$n" || fail "removing values after freeing space failed"
	rm -f "$MNT/kv/v$(printf %05d "$n")" 2>/dev/null || true
	local i
	for i in 1 2 3 4 5; do
		echo "{\"again\": $i, \"pad\": \"$(printf 'y%.0s' $(seq 2000))\"}" \
			>"$MNT/kv/again$i" || fail "write $i after freeing space failed"
	done
	for i in 1 2 3 4 5; do
		assert_content "$MNT/kv/again$i" \
			"{\"again\": $i, \"pad\": \"$(printf 'y%.0s' $(seq 2000))\"}"$'\n'
	done
	# The odd ones are untouched.
	run tmo "$PYTHON" -c '
import os, sys
for i in list(range(3, int(sys.argv[2]), 2)) + list(range(20, int(sys.argv[2]))):
    want = ("{\"i\": %d, \"pad\": \"%s\"}" % (i, "%06d" % i * 1200)).encode()
    if open(os.path.join(sys.argv[1], "kv", "v%05d" % i), "rb").read() != want:
        sys.exit("v%05d damaged" % i)
' "$MNT" "$n"
	[ "$status" -eq 0 ] || fail "$output"
	unmount_dsfs
	run tmo "$DSFSCTL" check "$STORE" 3>&- 4>&-
	[ "$status" -eq 0 ] || fail "dsfsctl check after the full disk: $output"
	figure "full disk: 3 MiB tmpfs (1 MiB ballast) full after $stored values, all read back exactly; writable again after rm"
}

# The values of the self-filled disk test: value i is a deterministic
# function of i, so the checker can rebuild it.
SELFFILL_PY='
import errno, os, sys
def val(i):
    return ("{\"i\": %d, \"pad\": \"%s\"}" % (i, "%05d" % i * 1000)).encode()
def fill(mnt, okf):
    ok = open(okf, "w")
    for i in range(100000):
        p = os.path.join(mnt, "kv", "f%05d" % i)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, val(i))
            finally:
                os.close(fd)
        except OSError as e:
            print("%d %s" % (i, errno.errorcode.get(e.errno, e.errno)))
            return 0
        ok.write("%d\n" % i); ok.flush()
    print("never full")
    return 0
def check(mnt, okf, skip):
    skip = set(int(x) for x in skip.split(",") if x)
    n = 0
    for line in open(okf):
        i = int(line)
        if i in skip:
            continue
        got = open(os.path.join(mnt, "kv", "f%05d" % i), "rb").read()
        if got != val(i):
            sys.exit("f%05d: damaged (%d bytes)" % (i, len(got)))
        n += 1
    print(n)
    return 0
if sys.argv[1] == "fill":
    sys.exit(fill(sys.argv[2], sys.argv[3]))
sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else ""))
'

@test "a large disk filled by another program: the next write is refused with ENOSPC, the old value stays, and works again after rm" {
	# Large enough that dsfs answers "does it fit?" from its last look at
	# the disk for a moment (dsfs.8, CAPACITY); filled to its last 64 KiB
	# from outside, which dsfs learns at the latest that moment later.
	small_disk 256M
	STORE=$SMALL/store
	mount_dsfs -o runtime_size=1G
	echo '{"v": "old"}' >"$MNT/kv/x"
	"$PYTHON" -c 'print("{\"v\": \"" + "x" * 300000 + "\"}")' >"$T/big"
	local avail
	avail=$(($(stat -f -c '%a*%S' "$SMALL")))
	fallocate -l $((avail - 65536)) "$SMALL/filler" ||
		fail "cannot fill the disk from outside"
	sleep 0.5
	# one write(2) of it all (write_from: DSFS_PYOPS)
	assert_errno write_from "$MNT/kv/x" "$T/big" ENOSPC
	assert_content "$MNT/kv/x" '{"v": "old"}
'
	rm "$SMALL/filler"
	sleep 0.5
	cp "$T/big" "$MNT/kv/x" || fail "cannot write once the disk has room"
	cmp "$T/big" "$MNT/kv/x"
}

@test "disk filled by dsfs's own values: ENOSPC, then rm through the mount works, then writes work, no remount" {
	small_disk 12M
	STORE=$SMALL/store
	mount_dsfs -o runtime_size=64M
	printf '%s' "$SELFFILL_PY" >"$T/fill.py"
	run tmo "$PYTHON" "$T/fill.py" fill "$MNT" "$T/ok"
	[ "$status" -eq 0 ] || fail "writer failed: $output"
	local n err out i rounds removed=0 again=0
	read -r n err <<<"$output"
	[ "$err" = ENOSPC ] || fail "the write of value $n failed with '$err', not ENOSPC: $output"
	[ "$n" -gt 100 ] || fail "only $n values fit on 12 MiB"
	run tmo "$PYTHON" "$T/fill.py" check "$MNT" "$T/ok"
	[ "$status" -eq 0 ] || fail "after ENOSPC: $output"
	local stored=$output
	# Three rounds: remove 20 values through the mount (every rm must
	# succeed), write 10 new ones (they must fit in the room freed), then
	# fill up again.
	local skip=
	for rounds in 1 2 3; do
		for i in $(seq $((rounds * 20)) $((rounds * 20 + 19))); do
			out=$(pyop unlink "$MNT/kv/f$(printf %05d "$i")")
			[ "$out" = OK ] ||
				fail "round $rounds: rm of f$(printf %05d "$i") on a disk full of values: $out"
			skip=$skip$i,
			removed=$((removed + 1))
		done
		for i in $(seq 10); do
			out=$(pyop write "$MNT/kv/again$rounds.$i" \
				"{\"again\": $i, \"pad\": \"$(printf 'y%.0s' $(seq 4000))\"}")
			[ "$out" = OK ] ||
				fail "round $rounds: write $i after rm: $out"
			again=$((again + 1))
		done
		run tmo "$PYTHON" "$T/fill.py" fill "$MNT" "$T/ok2.$rounds"
		[ "$status" -eq 0 ] || fail "round $rounds: refill failed: $output"
		read -r n err <<<"$output"
		[ "$err" = ENOSPC ] ||
			fail "round $rounds: refill ended with '$err', not ENOSPC: $output"
	done
	run tmo "$PYTHON" "$T/fill.py" check "$MNT" "$T/ok" "$skip"
	[ "$status" -eq 0 ] || fail "the first values after three rounds: $output"
	for rounds in 1 2 3; do
		for i in $(seq 10); do
			assert_content "$MNT/kv/again$rounds.$i" \
				"{\"again\": $i, \"pad\": \"$(printf 'y%.0s' $(seq 4000))\"}"
		done
	done
	unmount_dsfs
	run tmo "$DSFSCTL" check "$STORE" 3>&- 4>&-
	[ "$status" -eq 0 ] || fail "dsfsctl check after the full disk: $output"
	figure "self-filled disk: 12 MiB tmpfs full after $stored values (ENOSPC);" \
		"$removed removed and $again written through the mount in 3 rounds, refilled each time, no remount"
}

# One process writes every hostile input in turn to kv/h and compares
# dsfs's verdict with python's json module made strict (NaN and Infinity,
# lone surrogates and nesting over 512 refused; empty or white space only
# is an entry with no value).  A refused input must leave the previous
# value; an accepted one must read back byte for byte.  Prints "tried
# accepted refused", or the first disagreement and exits 1.
HOSTILE_PY='
import errno, json, os, random, sys, time
mnt, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
path = mnt + "/kv/h"
seeds = [b"{\"a\": [1, 2.5e-3, true, null], \"b\": {\"c\": \"d\\u00e9\"}}",
         b"[\"x\", -0, 1E+2, {\"k\": [[], {}]}, \"\\ud83d\\ude00\"]",
         b"\"caf\xc3\xa9 \\n\"", b"  123  ", b"{\"nested\": [[[[{\"z\": false}]]]]}"]
alphabet = b"{}[],:\" \\0123456789.eE+-tfnalsru\x00\xff\xc3\xa9"
def deep(o, d=0):
    if d > 512: raise ValueError("deep")
    if isinstance(o, dict):
        for k, v in o.items(): k.encode("utf-8"); deep(v, d + 1)
    elif isinstance(o, list):
        for v in o: deep(v, d + 1)
    elif isinstance(o, str): o.encode("utf-8")
def valid(b):
    try:
        t = b.decode("utf-8")
        if t.strip(" \t\n\r") == "": return True
        def bad(c): raise ValueError(c)
        deep(json.loads(t, parse_constant=bad))
        return True
    except (ValueError, UnicodeError, RecursionError):
        return False
def mutate():
    d = bytearray(rng.choice(seeds))
    k = rng.randrange(5)
    if k == 0: return bytes(rng.randrange(256) for _ in range(rng.randrange(24)))
    if k == 1: return bytes(d[:rng.randrange(len(d) + 1)])
    for _ in range(rng.randrange(1, 4)):
        p = rng.randrange(len(d) + 1)
        c = rng.choice(alphabet)
        op = rng.randrange(3)
        if op == 0 and p < len(d): d[p] = c
        elif op == 1: d.insert(p, c)
        elif p < len(d): del d[p]
    return bytes(d)
cur = b"\"start\""
with open(path, "wb") as f: f.write(cur)
acc = rej = 0
for i in range(n):
    data = mutate()
    ok = True
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as e:
        if e.errno != errno.EINVAL: sys.exit("input %r: %s" % (data, e))
        ok = False
    want = valid(data)
    with open(path, "rb") as f: got = f.read()
    # Nothing written after O_TRUNC: the truncation is committed by the
    # kernel'"'"'s RELEASE, which comes just after close() returns (dsfs(8)).
    tries = 0
    while ok and data == b"" and got != b"" and tries < 100:
        time.sleep(0.01); tries += 1
        with open(path, "rb") as f: got = f.read()
    if ok != want:
        sys.exit("input %r: dsfs %s it, the reference parser %s it" % (data, "took" if ok else "refused", "takes" if want else "refuses"))
    if ok and got != data: sys.exit("input %r accepted but reads back %r" % (data, got))
    if not ok and got != cur: sys.exit("input %r refused but the value is now %r, not %r" % (data, got, cur))
    if ok: cur = data; acc += 1
    else: rej += 1
print(n, acc, rej)
'

@test "hostile JSON: random, truncated and mutated documents match an independent parser" {
	mount_dsfs
	local seed=${DSFS_HOSTILE_SEED:-$RANDOM}
	run tmo "$PYTHON" -c "$HOSTILE_PY" "$MNT" "$seed" "${DSFS_HOSTILE_INPUTS:-400}"
	[ "$status" -eq 0 ] || fail "seed $seed: $output"
	local tried acc rej
	read -r tried acc rej <<<"${lines[0]}"
	[ "$acc" -gt 20 ] && [ "$rej" -gt 20 ] ||
		fail "a poor corpus: $acc accepted, $rej refused"
	[ -n "$(daemon_pids)" ] || fail "the daemon died"
	figure "hostile JSON: $tried inputs tried (seed $seed): $acc accepted, $rej refused, all as the reference parser says"
}

@test "hostile JSON: 10,000 levels of nesting is EINVAL and the daemon stays up" {
	mount_dsfs
	echo '"before"' >"$MNT/kv/deep"
	local pid
	pid=$(daemon_pids)
	run tmo "$PYTHON" -c '
import errno, os, sys
for data in (b"[" * 10000 + b"]" * 10000, b"{\"a\":" * 10000 + b"1" + b"}" * 10000,
             b"[" * 10000):
    try:
        fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        print("OK")
    except OSError as e:
        print(errno.errorcode[e.errno])
' "$MNT/kv/deep"
	[ "$status" -eq 0 ] || fail "$output"
	[ "$output" = "$(printf 'EINVAL\nEINVAL\nEINVAL')" ] ||
		fail "expected EINVAL three times, got: $output"
	[ "$(daemon_pids)" = "$pid" ] || fail "the daemon died or changed"
	assert_content "$MNT/kv/deep" $'"before"\n'
	echo '[[[1]]]' >"$MNT/kv/shallow"
	assert_content "$MNT/kv/shallow" $'[[[1]]]\n'
}

@test "a 100 MiB single write is ENOSPC, quickly, and the daemon's memory stays sane" {
	mount_dsfs
	echo '"small"' >"$MNT/kv/big"
	local pid hwm start=$SECONDS
	pid=$(daemon_pids)
	# Written like cat or dd: write() until everything is written, then
	# close.  Every error reported must be ENOSPC.
	run tmo "$PYTHON" -c '
import errno, os, sys
data = memoryview(b"\"" + b"a" * (100 * 1024 * 1024 - 2) + b"\"")
errs = []
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
while data:
    try:
        n = os.write(fd, data)
        data = data[n:]
    except OSError as e:
        errs.append("write:" + errno.errorcode[e.errno])
        break
try:
    os.close(fd)
except OSError as e:
    errs.append("close:" + errno.errorcode[e.errno])
print(" ".join(errs) or "OK")
' "$MNT/kv/big"
	[ "$status" -eq 0 ] || fail "$output"
	case $output in
	# (close may repeat the refusal as EINVAL once a write said ENOSPC)
	"write:ENOSPC" | "write:ENOSPC close:ENOSPC" | "write:ENOSPC close:EINVAL" | "close:ENOSPC") ;;
	*) fail "expected ENOSPC (at write or close), got: $output" ;;
	esac
	[ $((SECONDS - start)) -lt 30 ] || fail "took $((SECONDS - start)) s"
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
	[ -n "$hwm" ] || fail "no VmHWM for daemon $pid"
	[ "$hwm" -lt $((400 * 1024)) ] || fail "the daemon's peak RSS is $hwm kB"
	assert_content "$MNT/kv/big" $'"small"\n'
	figure "100 MiB write: ENOSPC in $((SECONDS - start)) s, daemon peak RSS $((hwm / 1024)) MiB"
}

@test "names: every byte 1..255 but '/' inside a name; valid UTF-8 created, invalid EINVAL" {
	mount_dsfs
	run tmo "$PYTHON" -c '
import errno, os, sys
d = os.fsencode(os.path.join(sys.argv[1], "kv"))
ok, bad, made = 0, [], []
for b in range(1, 256):
    if b == 0x2f:
        continue
    name = b"a" + bytes([b]) + b"b"
    try:
        name.decode("utf-8"); want = None
    except UnicodeDecodeError:
        want = errno.EINVAL
    for what in ("file", "dir"):
        n = name + (b"d" if what == "dir" else b"")
        p = d + b"/" + n
        try:
            if what == "dir":
                os.mkdir(p)
            else:
                with open(p, "wb") as f:
                    f.write(b"%d" % b)
            got = None
        except OSError as e:
            got = e.errno
        if got != want:
            bad.append("%s %r: %s, expected %s" % (what, n,
                       os.strerror(got) if got else "created",
                       os.strerror(want) if want else "created"))
        elif got is None:
            made.append(n)
            ok += 1
for n in made:
    p = d + b"/" + n
    if not n.endswith(b"d") and open(p, "rb").read() != b"%d" % n[1]:
        bad.append("%r reads back wrong" % n)
if sorted(os.listdir(d)) != sorted(made):
    bad.append("listing differs: %r" % sorted(set(os.listdir(d)) ^ set(made)))
print(ok)
for x in bad:
    sys.stderr.write(x + "\n")
sys.exit(1 if bad else 0)
' "$MNT"
	[ "$status" -eq 0 ] || fail "$output"
	# 126 ASCII bytes (1..127 without "/"), as a file and a directory.
	[ "${lines[0]}" = 252 ] || fail "created ${lines[0]}, expected 252"
	figure "names: 254 bytes x (file, dir) tried: 252 created, 256 refused with EINVAL"
}

@test "a truncated runtime.db is refused at mount and left byte for byte untouched" {
	# Damaged, foreign and text runtime.db: durability.bats.
	mount_dsfs
	local i
	mkdir "$MNT/kv/t"
	for i in $(seq 300); do
		echo "{\"i\": $i, \"pad\": \"$(printf '%0300d' "$i")\"}" >"$MNT/kv/t/v$i"
	done
	unmount_dsfs
	local size sum cut
	size=$(stat -c %s "$STORE/runtime.db")
	[ "$size" -gt 65536 ] || fail "runtime.db is only $size bytes"
	for cut in 50 $((size / 2)); do
		cp -p "$STORE/runtime.db" "$T/full.db"
		truncate -s "$cut" "$STORE/runtime.db"
		sum=$(sha256sum <"$STORE/runtime.db")
		run tmo "$DSFS" "$STORE" "$MNT" 3>&- 4>&-
		if mountpoint -q "$MNT"; then
			unmount_dsfs
			fail "runtime.db truncated to $cut of $size bytes was mounted"
		fi
		[ "$status" -ne 0 ] || fail "dsfs exited 0 on a truncated runtime.db ($cut bytes)"
		[[ "$output" == *runtime.db* ]] ||
			fail "the message does not name runtime.db: $output"
		[ "$(sha256sum <"$STORE/runtime.db")" = "$sum" ] ||
			fail "the truncated runtime.db ($cut bytes) was changed"
		run tmo "$DSFSCTL" check "$STORE" 3>&- 4>&-
		[ "$status" -ne 0 ] || fail "dsfsctl check passes a runtime.db cut to $cut bytes"
		[ "$(sha256sum <"$STORE/runtime.db")" = "$sum" ] ||
			fail "dsfsctl check changed the truncated runtime.db"
		cp -p "$T/full.db" "$STORE/runtime.db"
	done
}

# -------------------------------------------------------------- concurrency

@test "concurrency: readers never see a partial or invalid value while writers replace it" {
	mount_dsfs
	mkdir "$MNT/kv/c"
	run tmo "$PYTHON" -c '
import json, multiprocessing as mp, os, random, sys, time
mnt = sys.argv[1]
keys = [os.path.join(mnt, "kv", "c", "k%d" % i) for i in range(4)]
def val(w, n):
    return json.dumps({"w": w, "n": n, "data": "z" * (n * 97 % 20000)}).encode()
for k in keys:
    open(k, "wb").write(val(0, 0))
END = time.time() + 3
def writer(w, q):
    rnd, n, bad = random.Random(w), 0, None
    try:
        while time.time() < END:
            n += 1
            k = rnd.choice(keys)
            if w % 2:
                tmp = k + ".tmp%d" % w
                with open(tmp, "wb") as f: f.write(val(w, n))
                os.rename(tmp, k)           # replace by rename
            else:
                with open(k, "wb") as f:    # replace in place
                    d = val(w, n)
                    f.write(d[:len(d) // 3]); f.flush(); f.write(d[len(d) // 3:])
    except OSError as e:
        bad = "writer %d (%s): %s" % (w, "rename" if w % 2 else "in place", e)
    q.put(("w", n, bad))
def reader(r, q):
    reads, bad = 0, None
    while time.time() < END and bad is None:
        for k in keys:
            try:
                d = open(k, "rb").read()
            except OSError as e:
                bad = "reader: %s" % e
                break
            reads += 1
            try:
                v = json.loads(d)
                if len(v["data"]) != v["n"] * 97 % 20000 or d != val(v["w"], v["n"]):
                    bad = "%s: inconsistent value %r" % (k, d[:80])
            except Exception as e:
                bad = "%s: partial or invalid (%d bytes): %r" % (k, len(d), d[:80])
    q.put(("r", reads, bad))
q = mp.Queue()
ps = [mp.Process(target=writer, args=(w, q)) for w in (1, 2, 3, 4)]
ps += [mp.Process(target=reader, args=(r, q)) for r in range(4)]
for p in ps: p.start()
res = [q.get(timeout=60) for _ in ps]
for p in ps: p.join(10)
writes = sum(n for t, n, _ in res if t == "w")
reads = sum(n for t, n, _ in res if t == "r")
bads = [b for _, _, b in res if b]
print(writes, reads)
for b in bads: sys.stderr.write(b + "\n")
sys.exit(1 if bads or any(p.exitcode for p in ps) else 0)
' "$MNT"
	[ "$status" -eq 0 ] || fail "$output"
	local writes reads
	read -r writes reads <<<"${lines[0]}"
	[ "$writes" -gt 20 ] && [ "$reads" -gt 20 ] || fail "too little done: $output"
	figure "readers vs writers: $writes replacements, $reads reads, none partial"
}

@test "concurrency: a rename storm between namespaces keeps every value exactly once" {
	mount_dsfs
	mkdir "$MNT/kv/a" "$MNT/kv/b"
	local i
	for i in $(seq 0 39); do
		echo "{\"x\": $i}" >"$MNT/kv/a/x$i"
	done
	run tmo "$PYTHON" -c '
import errno, multiprocessing as mp, os, random, sys, time
mnt = sys.argv[1]
A, B = os.path.join(mnt, "kv", "a"), os.path.join(mnt, "kv", "b")
END = time.time() + 3
def storm(s, q):
    rnd, done, err = random.Random(s), 0, None
    while time.time() < END and err is None:
        i = rnd.randrange(40)
        src, dst = (A, B) if rnd.random() < 0.5 else (B, A)
        try:
            os.rename(os.path.join(src, "x%d" % i), os.path.join(dst, "x%d" % i))
            done += 1
        except OSError as e:
            if e.errno != errno.ENOENT:
                err = "rename x%d: %s" % (i, e)
    q.put((done, err))
q = mp.Queue()
ps = [mp.Process(target=storm, args=(s, q)) for s in range(12)]
for p in ps: p.start()
res = [q.get(timeout=60) for _ in ps]
for p in ps: p.join(10)
errs = [e for _, e in res if e]
for e in errs: sys.stderr.write(e + "\n")
print(sum(d for d, _ in res))
sys.exit(1 if errs else 0)
' "$MNT"
	[ "$status" -eq 0 ] || fail "$output"
	local renames=${lines[0]}
	[ "$renames" -gt 100 ] || fail "only $renames renames"
	check_exactly_once()
	{
		local i n
		for i in $(seq 0 39); do
			n=0
			[ ! -e "$MNT/kv/a/x$i" ] || n=$((n + 1))
			[ ! -e "$MNT/kv/b/x$i" ] || n=$((n + 1))
			[ $n -eq 1 ] || fail "x$i is there $n times" || return 1
			if [ -e "$MNT/kv/a/x$i" ]; then
				assert_content "$MNT/kv/a/x$i" "{\"x\": $i}"$'\n' || return 1
			else
				assert_content "$MNT/kv/b/x$i" "{\"x\": $i}"$'\n' || return 1
			fi
		done
		[ $(($(ls "$MNT/kv/a" | wc -l) + $(ls "$MNT/kv/b" | wc -l))) -eq 40 ] ||
			fail "the listings hold $(ls "$MNT/kv/a" "$MNT/kv/b")"
	}
	check_exactly_once
	remount_dsfs
	check_exactly_once
	figure "rename storm: 12 processes, $renames renames, 40 values each exactly once"
}

@test "concurrency: 32 processes x 10 flock increments end at exactly 320" {
	mount_dsfs
	echo 0 >"$MNT/kv/n"
	local i pids=() failed=0
	for i in $(seq 32); do
		(
			cd "$MNT/kv" || exit 1
			for _ in $(seq 10); do
				timeout 60 flock n sh -c 'echo $(($(cat n)+1)) > n' || exit 1
			done
		) 3>&- 4>&- &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || failed=$((failed + 1))
	done
	[ $failed -eq 0 ] || fail "$failed workers failed"
	assert_content "$MNT/kv/n" $'320\n'
}

@test "concurrency: listing during mass creation and deletion of 2,000 entries" {
	mount_dsfs
	mkdir "$MNT/kv/d"
	run tmo "$PYTHON" -c '
import multiprocessing as mp, os, sys, time
d = os.path.join(sys.argv[1], "kv", "d")
ALL = ["f%04d" % i for i in range(2000)]
VALID = set(ALL)
def create(part):
    for n in ALL[part::4]:
        with open(os.path.join(d, n), "w") as f: f.write("%d" % int(n[1:]))
def delete(part):
    for n in ALL[part::4]:
        if int(n[1:]) % 2 == 0:
            os.unlink(os.path.join(d, n))
ODD = set(n for n in ALL if int(n[1:]) % 2)
def lister(stop, phase, q):
    # Phase 1 only creates: no name may show twice.  Phase 2 only removes
    # even names: every odd name exists all along and must show.
    listings, bad = 0, None
    while not stop.is_set() and bad is None:
        ph = phase.value
        try:
            names = os.listdir(d)
        except OSError as e:
            bad = "listdir: %s" % e; break
        listings += 1
        dup = sorted(n for n in set(names) if names.count(n) > 1)
        if dup:
            bad = "phase %d: a listing of %d names shows %d twice, e.g. %r" % (
                ph, len(names), len(dup), dup[:3])
        elif not set(names) <= VALID:
            bad = "a listing with strangers: %r" % sorted(set(names) - VALID)[:5]
        elif ph == 2 and phase.value == 2 and not ODD <= set(names):
            miss = sorted(ODD - set(names))
            bad = "phase 2: a listing misses %d entries that exist, e.g. %r" % (
                len(miss), miss[:3])
    q.put((listings, bad))
stop, q, phase = mp.Event(), mp.Queue(), mp.Value("i", 1)
ls = [mp.Process(target=lister, args=(stop, phase, q)) for _ in range(2)]
for p in ls: p.start()
for ph, work in ((1, create), (2, delete)):
    phase.value = ph
    ps = [mp.Process(target=work, args=(i,)) for i in range(4)]
    for p in ps: p.start()
    for p in ps: p.join(60)
    if any(p.exitcode for p in ps):
        sys.exit("a %s worker failed" % work.__name__)
stop.set()
res = [q.get(timeout=60) for _ in ls]
for p in ls: p.join(10)
bad = [b for _, b in res if b]
want = sorted(n for n in ALL if int(n[1:]) % 2)
got = sorted(os.listdir(d))
if got != want:
    bad.append("final listing: %d names, expected %d; missing %r, extra %r" % (
        len(got), len(want), sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5]))
for n in want:
    if open(os.path.join(d, n)).read() != "%d" % int(n[1:]):
        bad.append("%s: wrong content" % n); break
print(sum(n for n, _ in res))
for b in bad: sys.stderr.write(b + "\n")
sys.exit(1 if bad else 0)
' "$MNT"
	[ "$status" -eq 0 ] || fail "$output"
	[ "${lines[0]}" -gt 5 ] || fail "only ${lines[0]} listings during the storm"
	[ "$(ls "$MNT/kv/d" | wc -l)" -eq 1000 ]
	figure "listing storm: 2,000 created, 1,000 removed by 4 processes each, ${lines[0]} listings, all consistent"
}
