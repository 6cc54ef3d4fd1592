#!/usr/bin/env bats
# pagecache.bats - reads served from the kernel's page cache never show a
# stale or mixed value: readers in a loop against writers in place, by
# rename, through runtime/kv/ and by dsfsctl set; a reader holding the old
# value open keeps it whole while the name shows the new one; an open
# after a commit sees it; flock still serialises across a name's inodes;
# a stat racing with the retirement of a read inode never gives it another
# version's size (which would cut its readers' reads); getxattr of a name
# renamed over in a storm never fails with ESTALE.
# (Across hosts, values and images: cluster.bats.)

load helpers

setup()
{
	setup_store
}

teardown()
{
	teardown_store
}

# The value number N of a writer W: its length varies with N, so a mix of
# two values or a size of another one is never valid JSON of this form.
PC_VAL='
import json, sys
def val(w, n):
    return json.dumps({"w": w, "n": n, "data": "z" * (n * 389 % 9000)})
'

# The writers and the run of a loop, shared by the loops below; each
# defines MNT, CTL, STORE, KEYS (keys such as kv/p/x), value(w, n) (bytes),
# stop() and reader(r) before calling run().  Kind 1 writes in place, in
# two writes; 2 renames a new file over the name; 3 writes through the
# runtime layer's tree; 4 is dsfsctl set.
PC_LOOP='
import multiprocessing as mp, os, random, subprocess, sys, time
def write(kind, key, d):
    path = os.path.join(MNT, key)
    if kind == 1:
        with open(path, "wb") as f:
            f.write(d[:len(d) // 2]); f.flush(); f.write(d[len(d) // 2:])
    elif kind == 2:
        with open(path + ".new", "wb") as f:
            f.write(d)
        os.rename(path + ".new", path)
    elif kind == 3:
        with open(os.path.join(MNT, "runtime", key), "wb") as f:
            f.write(d)
    else:
        subprocess.run([CTL, "set", STORE, key], input=d, check=True,
                       stdout=subprocess.DEVNULL)
def writer(kind, w):
    rnd, n, bad = random.Random(w), 0, None
    try:
        while not stop():
            n += 1
            write(kind, rnd.choice(KEYS), value(w, n))
    except (OSError, subprocess.CalledProcessError) as e:
        bad = "writer %d: %s" % (w, e)
    return "w", n, bad
def run(kinds, readers, timeout):
    """Writer w of kind kinds[w - 1] for each w, and the readers; prints
    the writes and the reads, exits 1 with what was wrong."""
    with mp.Pool(len(kinds) + readers) as pool:
        jobs = [pool.apply_async(writer, (k, w + 1))
                for w, k in enumerate(kinds)]
        jobs += [pool.apply_async(reader, (r,)) for r in range(readers)]
        res = [j.get(timeout=timeout) for j in jobs]
    done = {t: sum(n for k, n, _ in res if k == t) for t in "wr"}
    print(done["w"], done["r"])
    bads = [b for _, _, b in res if b]
    sys.stderr.write("".join(b + "\n" for b in bads))
    sys.exit(1 if bads else 0)
'

@test "readers in a loop see whole values while writers replace them in place, by rename, through runtime/ and by dsfsctl set" {
	mount_dsfs
	mkdir "$MNT/kv/p"
	run tmo "$PYTHON" -c "$PC_VAL$PC_LOOP"'
MNT, CTL, STORE = sys.argv[1:4]
KEYS = ["kv/p/k%d" % i for i in range(3)]
def value(w, n):
    return val(w, n).encode()
for k in KEYS:
    open(os.path.join(MNT, k), "wb").write(value(0, 0))
END = time.time() + 4
def stop():
    return time.time() > END
def reader(r):
    reads, bad = 0, None
    while time.time() < END and bad is None:
        for k in KEYS:
            path = os.path.join(MNT, k)
            try:
                if r % 2:
                    d = subprocess.run(["cat", path], check=True,
                                       capture_output=True).stdout.decode()
                else:
                    with open(path) as f:
                        d = f.read(7)
                        d += f.read()
            except (OSError, subprocess.CalledProcessError) as e:
                bad = "reader: %s" % e
                break
            reads += 1
            try:
                v = json.loads(d)
                if d != val(v["w"], v["n"]):
                    bad = "%s: inconsistent value %r" % (k, d[:60])
            except ValueError:
                bad = "%s: mixed or partial (%d bytes): %r" % (k, len(d), d[:60])
    return "r", reads, bad
run((1, 2, 3, 4), 4, 60)
' "$MNT" "$DSFSCTL" "$STORE"
	[ "$status" -eq 0 ] || fail "$output"
	local writes reads
	read -r writes reads <<<"${lines[0]}"
	[ "$writes" -gt 20 ] && [ "$reads" -gt 20 ] || fail "too little done: $output"
	echo "# page-cache readers vs 4 kinds of writers: $writes replacements, $reads reads, none mixed" >&3
}

@test "a reader holding a value open reads it whole after the name changed; the next open and stat see the new one" {
	mount_dsfs
	run tmo "$PYTHON" -c "$PC_VAL"'
import os, subprocess
mnt, ctl, store = sys.argv[1], sys.argv[2], sys.argv[3]
path = os.path.join(mnt, "kv", "held")
bad = []
def check(what, change, new):
    old = open(path).read()
    open(path).read()                       # a warm read: from the page cache
    f = open(path)
    head = f.read(10)
    change()
    rest = f.read()
    if head + rest != old:
        bad.append("%s: the open reader read %r, not the old value" % (what, (head + rest)[:40]))
    f.close()
    got = open(path).read()
    if got != new:
        bad.append("%s: an open after the change read %r" % (what, got[:40]))
    if os.stat(path).st_size != len(new):
        bad.append("%s: stat after the change says %d, not %d" % (what, os.stat(path).st_size, len(new)))
    if subprocess.run(["cat", path], capture_output=True).stdout.decode() != new:
        bad.append("%s: cat after the change" % what)
open(path, "w").write(val(0, 1))
def in_place():
    with open(path, "w") as g: g.write(val(1, 2))
def renamed():
    with open(path + ".tmp", "w") as g: g.write(val(2, 3))
    os.rename(path + ".tmp", path)
def layer():
    with open(os.path.join(mnt, "runtime", "kv", "held"), "w") as g: g.write(val(3, 4))
def admin():
    subprocess.run([ctl, "set", store, "kv/held", val(4, 5)], check=True, stdout=subprocess.DEVNULL)
def shorter():
    with open(path, "w") as g: g.write(val(5, 0))
check("in place", in_place, val(1, 2))
check("rename over it", renamed, val(2, 3))
check("runtime/kv", layer, val(3, 4))
check("dsfsctl set", admin, val(4, 5))
check("a shorter value", shorter, val(5, 0))
for b in bad: print(b)
sys.exit(1 if bad else 0)
' "$MNT" "$DSFSCTL" "$STORE"
	[ "$status" -eq 0 ] || fail "$output"
}

@test "a writer that opens a name held open by a reader is not refused, and the reader keeps its value" {
	mount_dsfs
	echo '"old value"' >"$MNT/kv/w"
	exec 5<"$MNT/kv/w"
	cat "$MNT/kv/w" >/dev/null
	echo '"new, longer value"' >"$MNT/kv/w" || fail "write over a held name failed"
	assert_content "$MNT/kv/w" '"new, longer value"
'
	[ "$(cat <&5)" = '"old value"' ] || fail "the held reader lost its value"
	exec 5<&-
	[ "$(stat -c %s "$MNT/kv/w")" = 20 ]
}

@test "flock serialises increments while a reader holds the file open across its versions" {
	mount_dsfs
	echo 0 >"$MNT/kv/n"
	exec 5<"$MNT/kv/n"
	local i pids=()
	for i in 1 2 3 4; do
		(
			for _ in 1 2 3 4 5; do
				flock "$MNT/kv/n" sh -c 'echo $(($(cat "$1")+1)) > "$1"' sh "$MNT/kv/n" || exit 1
			done
		) &
		pids+=($!)
	done
	local failed=0
	for i in "${pids[@]}"; do wait "$i" || failed=$((failed + 1)); done
	exec 5<&-
	[ $failed -eq 0 ] || fail "$failed workers failed"
	[ "$(cat "$MNT/kv/n")" = 20 ] || fail "counter is $(cat "$MNT/kv/n"), not 20"
}

@test "images read from the page cache: a replaced image reads back whole, the held one too" {
	mount_dsfs
	"$PYTHON" - "$MNT" <<'EOF' || fail "image reads"
import os, sys, zlib, struct
def png(n):
    raw = b"".join(b"\0" + bytes([(x * n) % 256 for x in range(64)]) for _ in range(64))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, n % 9)) + chunk(b"IEND", b""))
p = os.path.join(sys.argv[1], "images", "logo")
open(p, "wb").write(png(3))
assert open(p, "rb").read() == png(3)
held = open(p, "rb")
open(p, "wb").write(png(7))
assert open(p, "rb").read() == png(7), "the new image"
assert open(p, "rb").read() == png(7), "the new image, warm"
assert held.read() == png(3), "the held image"
EOF
}

# An image whose bytes say who wrote it: writer W's image number N is a
# PNG signature, "W N SIZE", then bytes drawn from a generator seeded with
# W and N, 4 KiB to 600 KiB long unless SIZE is asked for (several 128 KiB
# READs): a mix of two images, or one cut at another's size, is never the
# image its first bytes name.
PC_IMG='
import hashlib, random, sys
def img(w, n, size=None):
    size = size or 4096 + (n * 104729 + w * 7919) % 600000
    head = b"\x89PNG\r\n\x1a\n" + ("%d %d %d\n" % (w, n, size)).encode()
    return head + random.Random(w * 1000003 + n).randbytes(size - len(head))
def whose(d):
    """The image d says it is, or why it is not one."""
    try:
        w, n, size = d[8:d.index(b"\n", 8)].split()
        want = img(int(w), int(n), int(size))
    except ValueError:
        return "no image header (%d bytes): %r" % (len(d), d[:24])
    if hashlib.sha256(d).digest() != hashlib.sha256(want).digest():
        return "%d bytes that are not image %s %s (%d bytes)%s" % (
            len(d), w.decode(), n.decode(), len(want),
            ": its first bytes only" if want.startswith(d) else "")
    return None
'

@test "an image read warm, then replaced (a write, one of the same size and mtime, a rename over it, dsfsctl set, a write through runtime/images) reads back new at once in both views; a held reader keeps the old" {
	mount_dsfs
	run tmo "$PYTHON" -c "$PC_IMG"'
import os, subprocess
mnt, ctl, store = sys.argv[1], sys.argv[2], sys.argv[3]
path = os.path.join(mnt, "images", "held")
layer = os.path.join(mnt, "runtime", "images", "held")
bad = []
def read(p):
    with open(p, "rb") as f:
        return f.read()
def write(p, d):
    with open(p, "wb") as f:
        f.write(d)
def rename_over(p, d):
    write(p + ".tmp", d)
    os.rename(p + ".tmp", p)
def ctl_set(p, d):
    subprocess.run([ctl, "set", store, "images/held"], input=d, check=True,
                   stdout=subprocess.DEVNULL)
def write_as_before(p, d):
    # cp -p or tar x of another image of the same size: a kernel that
    # went by size and mtime would keep the old pages.
    st = os.stat(p)
    with open(p, "wb") as f:
        f.write(d)
        os.utime(f.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))
changes = [("a write", lambda d: write(path, d)),
           ("a write of the same size and mtime", lambda d: write_as_before(path, d)),
           ("the same through runtime/images", lambda d: write_as_before(layer, d)),
           ("a rename over it", lambda d: rename_over(path, d)),
           ("dsfsctl set", lambda d: ctl_set(path, d)),
           ("a write through runtime/images", lambda d: write(layer, d))]
n = 0
new = img(9, n)
write(path, new)
for what, change in changes:
    old = new
    for p in (path, layer):
        for warm in ("first", "warm"):          # the second from the page cache
            if read(p) != old:
                bad.append("%s, before %s: %s read is not the image written" % (p, what, warm))
    f = open(path, "rb")
    head = f.read(10)
    n += 1
    new = img(9, n, len(old) if "same size" in what or "same through" in what else None)
    change(new)
    if "same" in what and os.stat(path).st_mtime_ns != os.stat(layer).st_mtime_ns:
        bad.append("%s: the views disagree on the mtime" % what)
    for p in (path, layer):
        why = whose(read(p))
        if why or read(p) != new:
            bad.append("%s after %s: %s" % (p, what, why or "the old image"))
        if os.stat(p).st_size != len(new):
            bad.append("%s after %s: size %d, not %d" % (p, what, os.stat(p).st_size, len(new)))
    if head + f.read() != old:
        bad.append("%s: the reader that held it open read another image" % what)
    f.close()
sys.stderr.write("".join(b + "\n" for b in bad))
sys.exit(1 if bad else 0)
' "$MNT" "$DSFSCTL" "$STORE"
	[ "$status" -eq 0 ] || fail "$output"
}

# The four kinds of readers (cat, runtime/images, piecewise, by token)
# against the four kinds of writers for 5 s; PC_WRITERS chooses writers.
@test "image readers in a loop read whole images while writers replace them in place, by rename, through runtime/images and by dsfsctl set" {
	mount_dsfs
	mkdir "$MNT/images/p"
	run tmo "$PYTHON" -c "$PC_IMG$PC_LOOP"'
MNT, CTL, STORE = sys.argv[1:4]
KEYS = ["images/p/i%d" % i for i in range(2)]
KINDS = [int(w) for w in os.environ.get("PC_WRITERS", "1 2 3 4").split()]
value = img
for k in KEYS:
    open(os.path.join(MNT, k), "wb").write(value(0, 0))
END = time.time() + 5
def stop():
    return time.time() > END
def reader(r):
    reads, bad = 0, None
    while time.time() < END and bad is None:
        for k in KEYS:
            path = os.path.join(MNT, k)
            try:
                if r == 0:                  # cat, 128 KiB reads
                    d = subprocess.run(["cat", path], check=True,
                                       capture_output=True).stdout
                elif r == 1:                # the runtime layer view
                    with open(os.path.join(MNT, "runtime", k), "rb") as f:
                        d = f.read()
                elif r == 2:                # in small pieces, then the rest
                    with open(path, "rb") as f:
                        d = f.read(100)
                        d += f.read(70000)
                        d += f.read()
                else:                       # by its token
                    tok = os.getxattr(path, "user.dsfs.token").decode()
                    try:
                        with open(os.path.join(MNT, "images", ".by-token", tok), "rb") as f:
                            d = f.read()
                    except FileNotFoundError:
                        continue            # replaced and its blob gone since
                    if hashlib.sha256(d).hexdigest() != tok:
                        bad = "%s: .by-token/%s read %d bytes of another token" % (k, tok, len(d))
                        break
            except (OSError, subprocess.CalledProcessError) as e:
                bad = "reader %d: %s" % (r, e)
                break
            reads += 1
            why = whose(d)
            if why:
                bad = "reader %d: %s: %s" % (r, k, why)
                break
    return "r", reads, bad
run(KINDS, 4, 120)
' "$MNT" "$DSFSCTL" "$STORE"
	[ "$status" -eq 0 ] || fail "$output"
	local writes reads
	read -r writes reads <<<"${lines[0]}"
	[ "$writes" -gt 20 ] && [ "$reads" -gt 20 ] || fail "too little done: $output"
	echo "# page-cache image readers vs 4 kinds of writers: $writes replacements, $reads reads, none mixed" >&3
}

# Readers of one name through the page cache (cat, and python reading it
# whole or in pieces) against writers that change its size below the
# kernel (dsfsctl set, writes through the runtime layer's tree), for up
# to $PC_CUT_SECS seconds or until a reader is wrong.  A
# stat (GETATTR) that looked up the new version while another thread
# retired the node must not answer that version's size for the retired
# node: its readers read the old version, and the kernel cuts their
# reads at the size it holds.  $1 is the tree (kv or images); the value
# of writer W number N is PC_VAL's or PC_IMG's.
cut_loop()
{
	local tree=$1
	mount_dsfs
	mkdir "$MNT/$tree/p"
	run tmo "$PYTHON" -c "$PC_VAL$PC_IMG$PC_LOOP"'
MNT, CTL, STORE, tree, scratch = sys.argv[1:6]
KEYS = [tree + "/p/x"]
path = os.path.join(MNT, KEYS[0])
def value(w, n):
    return img(w, n) if tree == "images" else val(w, n).encode()
def wrong(d):
    if tree == "images":
        return whose(d)
    try:
        v = json.loads(d)
        return None if d.decode() == val(v["w"], v["n"]) else "another value"
    except ValueError:
        return "%d bytes, not a whole value: %r" % (len(d), d[:40])
open(path, "wb").write(value(0, 0))
END = time.time() + float(os.environ.get("PC_CUT_SECS", "15"))
BAD = os.path.join(scratch, "bad")
def stop():
    return time.time() > END or os.path.exists(BAD)
def reader(r):
    reads, bad = 0, None
    while not stop() and not bad:
        try:
            if r == 0:
                d = subprocess.run(["cat", path], check=True,
                                   capture_output=True).stdout
            else:
                with open(path, "rb") as f:
                    d = f.read(100) + f.read() if r == 1 else f.read()
        except (OSError, subprocess.CalledProcessError) as e:
            bad = "reader %d: %s" % (r, e)
            break
        reads += 1
        why = wrong(d)
        if why:
            bad = "reader %d, read %d: %s" % (r, reads, why)
    if bad:
        open(BAD, "w").close()
    return "r", reads, bad
# dsfsctl set, and two writers through the runtime layer.
run((4, 3, 3), 5, 120)
' "$MNT" "$DSFSCTL" "$STORE" "$tree" "$T"
	[ "$status" -eq 0 ] || fail "$output"
	local writes reads
	read -r writes reads <<<"${lines[0]}"
	[ "$writes" -gt 20 ] && [ "$reads" -gt 20 ] || fail "too little done: $output"
	echo "# $tree/: $writes changes of size below the kernel, $reads whole reads" >&3
}

@test "image readers read whole images while the size changes below the kernel (dsfsctl set, runtime/images)" {
	cut_loop images
}

@test "kv/ readers read whole values while the size changes below the kernel (dsfsctl set, runtime/kv)" {
	cut_loop kv
}

@test "getxattr of a name renamed over in a storm answers for what the name holds, never ESTALE" {
	mount_dsfs
	run tmo "$PYTHON" -c "$PC_IMG"'
import hashlib, multiprocessing as mp, os, time
mnt = sys.argv[1]
path = os.path.join(mnt, "images", "storm")
open(path, "wb").write(img(0, 0, 5000))
END = time.time() + 5
def renamer(w):
    n = 0
    while time.time() < END:
        n += 1
        with open(path + ".%d" % w, "wb") as f:
            f.write(img(w, n, 5000 + n % 3000))
        os.rename(path + ".%d" % w, path)
    return n, None
def asker(r):
    asks = 0
    while time.time() < END:
        try:
            tok = os.getxattr(path, "user.dsfs.token").decode()
            if r % 2:                   # and a reader holding it open
                with open(path, "rb") as f:
                    f.read(10)
        except OSError as e:
            return asks, "getxattr %d: %s" % (asks, e)
        if len(tok) != 64:
            return asks, "token %r" % tok
        asks += 1
    return asks, None
with mp.Pool(6) as pool:
    jobs = [pool.apply_async(renamer, (w,)) for w in (1, 2)]
    jobs += [pool.apply_async(asker, (r,)) for r in range(4)]
    res = [j.get(timeout=60) for j in jobs]
print(sum(n for n, _ in res[:2]), sum(n for n, _ in res[2:]))
bads = [b for _, b in res if b]
sys.stderr.write("".join(b + "\n" for b in bads))
sys.exit(1 if bads else 0)
' "$MNT"
	[ "$status" -eq 0 ] || fail "$output"
	local renames asks
	read -r renames asks <<<"${lines[0]}"
	[ "$renames" -gt 20 ] && [ "$asks" -gt 20 ] || fail "too little done: $output"
	echo "# $renames renames over the name, $asks getxattr, none ESTALE" >&3
}
