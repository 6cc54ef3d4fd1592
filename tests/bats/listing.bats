#!/usr/bin/env bats
# listing.bats - directory listings under the kernel's readdir cache: kv/
# and images/ listings are cached by the kernel, so every change -- through
# the mount, through a layer's own tree, through devices/, by a factory
# install -- must show in the next listing; and handles open on the same
# directory while it changes must each read a whole, consistent listing
# (every name at most once, every name that stayed there exactly once),
# with telldir/seekdir returning to the same place.

load helpers

setup()
{
	setup_store
}

teardown()
{
	teardown_store
}

# A reader of a directory through libc's opendir/readdir/telldir/seekdir,
# a few entries at a time, driven by commands on stdin:
#   open          opendir
#   read N        read N names (fewer at the end), print "name\t<tell>"
#   rest          read to the end
#   seek POS      seekdir(POS)
#   close         closedir
# Each command's output ends with a line "." so the caller can pace it.
DIRREADER='
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir.restype = ctypes.c_void_p
libc.readdir.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long
libc.telldir.argtypes = [ctypes.c_void_p]
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.closedir.argtypes = [ctypes.c_void_p]
NAME_OFF = 19  # struct dirent on x86-64 and arm64 glibc: ino, off, reclen, type
path = os.fsencode(sys.argv[1])
d = None
def read(n):
    out = []
    while n is None or len(out) < n:
        ctypes.set_errno(0)
        p = libc.readdir(d)
        if not p:
            if ctypes.get_errno():
                sys.exit("readdir: " + os.strerror(ctypes.get_errno()))
            break
        name = ctypes.string_at(p + NAME_OFF)
        if name in (b".", b".."):
            continue
        out.append(name.decode() + "\t" + str(libc.telldir(d)))
    return out
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "open":
        d = libc.opendir(path)
        if not d:
            sys.exit("opendir: " + os.strerror(ctypes.get_errno()))
    elif cmd[0] == "read":
        print("\n".join(read(int(cmd[1]))))
    elif cmd[0] == "rest":
        print("\n".join(read(None)))
    elif cmd[0] == "seek":
        libc.seekdir(d, int(cmd[1]))
    elif cmd[0] == "close":
        libc.closedir(d)
    print(".", flush=True)
'

# names FILE: the names of a reader's output, sorted.
names()
{
	grep -v '^\.$' "$1" | grep -v '^$' | cut -f1 | LC_ALL=C sort
}

@test "kv/ listings show changes made through runtime/, ephemeral/, devices/ and factory install" {
	mount_dsfs
	mkdir "$MNT/kv/d"
	for i in 1 2 3; do echo "$i" >"$MNT/kv/d/k$i"; done
	[ "$(ls1 "$MNT/kv/d")" = "$(printf '%s\n' k1 k2 k3)" ]
	# Listed twice: the second comes from the kernel's cache.
	[ "$(ls1 "$MNT/kv/d")" = "$(printf '%s\n' k1 k2 k3)" ]
	echo 4 >"$MNT/runtime/kv/d/k4"
	[ "$(ls1 "$MNT/kv/d")" = "$(printf '%s\n' k1 k2 k3 k4)" ]
	mkdir "$MNT/ephemeral/kv/d"
	echo 5 >"$MNT/ephemeral/kv/d/k5"
	[ "$(ls1 "$MNT/kv/d")" = "$(printf '%s\n' k1 k2 k3 k4 k5)" ]
	rm "$MNT/runtime/kv/d/k1"
	[ "$(ls1 "$MNT/kv/d")" = "$(printf '%s\n' k2 k3 k4 k5)" ]
	mkdir "$MNT/kv/__hub"
	ls1 "$MNT/kv/__hub" >/dev/null
	echo 6 >"$MNT/devices/hub/k6"
	[ "$(ls1 "$MNT/kv/__hub")" = k6 ]
	rm "$MNT/devices/hub/k6"
	[ -z "$(ls1 "$MNT/kv/__hub")" ]
	# A new factory image with an entry in kv/d.
	mkdir -p "$T/f/kv/d"
	echo '"f"' >"$T/f/kv/d/kf"
	tmo "$DSFSCTL" mkfactory "$T/f" "$T/new.db"
	ls1 "$MNT/kv/d" >/dev/null
	tmo "$DSFSCTL" install-factory "$T/new.db" "$STORE"
	[ "$(ls1 "$MNT/kv/d")" = "$(printf '%s\n' k2 k3 k4 k5 kf)" ]
}

@test "listings open while the directory changes are each whole and consistent" {
	mount_dsfs
	mkdir "$MNT/kv/d"
	for i in $(seq -w 1 1500); do
		printf '"%s"\n' "$i" >"$MNT/kv/d/name-with-some-length-$i"
	done
	before=$T/before
	ls1 "$MNT/kv/d" >"$before"
	# Reader A runs in the background, fed through a fifo.
	mkfifo "$T/a.in" "$T/a.out"
	tmo "$PYTHON" -c "$DIRREADER" "$MNT/kv/d" <"$T/a.in" >"$T/a.out" 3>&- &
	apid=$!
	exec {ain}>"$T/a.in" {aout}<"$T/a.out"
	printf 'open\nread 100\n' >&$ain
	read -r -u $aout dot
	: >"$T/a"
	while read -r -u $aout line && [ "$line" != . ]; do
		printf '%s\n' "$line" >>"$T/a"
	done
	[ "$(grep -c . "$T/a")" -eq 100 ]
	# Change the directory under the open handle: through the mount (the
	# kernel drops its cache itself) and through runtime/ (dsfs tells it).
	for i in $(seq -w 1001 1200); do rm "$MNT/kv/d/name-with-some-length-$i"; done
	for i in $(seq 1 150); do echo 1 >"$MNT/kv/d/new-$i"; done
	for i in $(seq 1 150); do echo 1 >"$MNT/runtime/kv/d/lower-$i"; done
	after=$T/after
	ls1 "$MNT/kv/d" >"$after"
	[ "$(grep -c . "$after")" -eq $((1500 - 200 + 300)) ]
	# A second handle, opened now, sees exactly the new state.
	printf 'open\nrest\nclose\n' |
		tmo "$PYTHON" -c "$DIRREADER" "$MNT/kv/d" >"$T/b"
	names "$T/b" | cmp - "$after"
	# The first handle goes on: no name twice, every name that stayed
	# there (in both states) exactly once, nothing that never existed.
	printf 'rest\nclose\n' >&$ain
	exec {ain}>&-
	cat <&$aout >>"$T/a"
	exec {aout}<&-
	wait $apid
	[ -z "$(names "$T/a" | uniq -d)" ] || fail "listed twice: $(names "$T/a" | uniq -d | head)"
	comm -12 "$before" "$after" >"$T/stayed"
	[ -z "$(names "$T/a" | comm -13 - "$T/stayed")" ] ||
		fail "missing: $(names "$T/a" | comm -13 - "$T/stayed" | head)"
	[ -z "$(names "$T/a" | comm -23 - <(LC_ALL=C sort -u "$before" "$after"))" ]
	# And a listing after all this is the new state again, from the cache.
	ls1 "$MNT/kv/d" | cmp - "$after"
}

@test "telldir/seekdir go back to the same entry of a cached listing" {
	mount_dsfs
	mkdir "$MNT/kv/d"
	for i in $(seq -w 1 600); do echo 1 >"$MNT/kv/d/entry-$i"; done
	ls1 "$MNT/kv/d" >/dev/null # fills the kernel's cache
	out=$(printf 'open\nread 250\nread 5\n' | tmo "$PYTHON" -c "$DIRREADER" "$MNT/kv/d")
	pos=$(printf '%s\n' "$out" | grep -v '^\.$' | sed -n 250p | cut -f2)
	want=$(printf '%s\n' "$out" | grep -v '^\.$' | sed -n '251,255p' | cut -f1)
	[ -n "$pos" ] && [ "$(printf '%s\n' "$want" | grep -c .)" -eq 5 ]
	# The same handle seeks back; a new handle seeks to the same spot.
	got=$(printf 'open\nread 300\nseek %s\nread 5\n' "$pos" |
		tmo "$PYTHON" -c "$DIRREADER" "$MNT/kv/d" | grep -v '^\.$' | sed -n '301,305p' | cut -f1)
	[ "$got" = "$want" ] || fail "after seekdir: $got, expected $want"
	got=$(printf 'open\nseek %s\nread 5\n' "$pos" |
		tmo "$PYTHON" -c "$DIRREADER" "$MNT/kv/d" | grep -v '^\.$' | cut -f1)
	[ "$got" = "$want" ] || fail "new handle after seekdir: $got, expected $want"
}

@test "a directory removed while open lists nothing, without an error" {
	mount_dsfs
	mkdir -p "$MNT/kv/e" "$MNT/runtime/kv/f"
	out=$(tmo "$PYTHON" -c '
import os, sys
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    os.rmdir(path)
    print(os.listdir(fd))
    os.close(fd)
' "$MNT/kv/e" "$MNT/runtime/kv/f")
	[ "$out" = "$(printf '[]\n[]')" ] || fail "got: $out"
}


@test "readers of 20,000 names list each name that stays exactly once while others come and go" {
	mount_dsfs
	mkdir "$MNT/kv/big"
	tmo "$PYTHON" -c '
import os, sys
for i in range(20000):
    with open(os.path.join(sys.argv[1], "stay-%05d" % i), "w") as f:
        f.write("1\n")
' "$MNT/kv/big"
	# Names made and removed while the readers read, through the mount
	# (the kernel drops its cached listing) and through runtime/ (dsfs
	# tells it to); at most 60 s, or until the readers are done.
	tmo "$PYTHON" -c '
import os, sys, time
merged, lower, stop = sys.argv[1:]
end = time.monotonic() + 60
i = 0
while not os.path.exists(stop) and time.monotonic() < end:
    d = merged if i % 2 else lower
    with open(os.path.join(d, "churn-%06d" % i), "w") as f:
        f.write("1\n")
    if i >= 20:
        os.unlink(os.path.join(merged, "churn-%06d" % (i - 20)))
    i += 1
print(i)
' "$MNT/kv/big" "$MNT/runtime/kv/big" "$T/stop" >"$T/churned" 3>&- &
	churn=$!
	# Each reader pauses every 500 names, so that changes land between
	# the READDIRs of one listing.
	out=$(tmo "$PYTHON" -c '
import collections, os, sys, time
path = sys.argv[1]
for run in range(4):
    seen = collections.Counter()
    for k, e in enumerate(os.scandir(path)):
        seen[e.name] += 1
        if k % 500 == 0:
            time.sleep(0.005)
    twice = [n for n, c in seen.items() if c > 1]
    stay = [n for n in seen if n.startswith("stay-")]
    odd = [n for n in seen if not n.startswith(("stay-", "churn-"))]
    churn = len(seen) - len(stay) - len(odd)
    print(run, len(stay), len(twice), len(odd), churn, twice[:3], odd[:3])
' "$MNT/kv/big")
	rc=$?
	touch "$T/stop"
	wait $churn
	[ "$rc" -eq 0 ] || fail "reader failed: $out"
	[ "$(cat "$T/churned")" -gt 40 ] || fail "too few changes while reading: $(cat "$T/churned")"
	# Per run: all 20,000 that stayed, none twice, nothing else.
	printf '%s\n' "$out" | awk '
		$2 != 20000 || $3 != 0 || $4 != 0 { bad = 1 }
		END { exit bad }' || fail "a listing lost or repeated names: $out"
}
