#!/usr/bin/env bats
# posix.bats - the POSIX details tools rely on, as on a local Linux
# filesystem: directory times (a made, removed or renamed name updates its
# directory's mtime and ctime; chmod, chown, utimens, truncate and a
# committed write update ctime), set-id bits and the chown rules, paths up
# to PATH_MAX below the mount in every tree, and link counts (a directory
# has 2 plus its subdirectories, merged trees included; a file has 1).
#
# The set-id rules are checked against a directory of the local filesystem
# $T is on: the same script runs there and on the mount, as root and as an
# unprivileged user (nobody, with one supplementary group), and both must
# print the same.  The tests that act as that user need root (setpriv) and
# a mount made with allow_other.

load helpers

setup()
{
	setup_store
	NOBODY_UID=$(id -u nobody)
	NOBODY_GID=$(getent group nogroup | cut -d: -f3)
	# A group the user is a member of (supplementary) and one it is not.
	MEMBER_GID=4711
	OTHER_GID=4712
}

teardown()
{
	teardown_store
}

need_root()
{
	[ "$(id -u)" = 0 ] || fail "this test needs root (setpriv, chown)"
}

# as_user CMD...: runs CMD as nobody:nogroup with MEMBER_GID as its one
# supplementary group, and no capabilities.
as_user()
{
	timeout "$OP_TIMEOUT" setpriv --reuid="$NOBODY_UID" \
		--regid="$NOBODY_GID" --groups="$MEMBER_GID" -- "$@"
}

# What the tests measure, with python: times in nanoseconds, the long
# paths, the set-id cases.
POSIX_PY='
import errno, os, sys, time
op, args = sys.argv[1], sys.argv[2:]

def attempt(label, fn):
    try:
        fn()
        print(label, "OK")
    except OSError as e:
        print(label, errno.errorcode.get(e.errno, str(e.errno)))

def mode(p):
    return "%o" % (os.stat(p).st_mode & 0o7777)

if op == "times":
    # mtime and ctime of each path, in nanoseconds
    for p in args:
        s = os.stat(p)
        print(s.st_mtime_ns, s.st_ctime_ns)
elif op == "longpath":
    # In the directory args[0], under args[1]: directories of 200-byte
    # names down to a name that makes the path exactly PATH_MAX - 1 bytes,
    # then every operation on that path; then a directory one byte longer
    # through a directory descriptor (no path argument can be that long):
    # a key ("kv/...") as long as that is more than dsfs keeps, but in the
    # tree of one layer, whose key is shorter than the path, it fits.
    os.chdir(args[0])
    tree, content = args[1], args[2].encode()
    if content.startswith(b"@"):
        with open(content[1:], "rb") as r:
            content = r.read()
    p = tree
    while len(p) + 1 + 200 + 1 + 40 < 4095:
        p += "/" + ("%03d" % (len(p) // 200)) * 66 + "dd"
        os.mkdir(p)
    f = p + "/" + "f" * (4095 - len(p) - 1)
    g, d = f[:-1] + "g", f[:-1] + "d"
    print("length", len(f.encode()))
    def create():
        os.close(os.open(f, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    def write():
        fd = os.open(f, os.O_WRONLY | os.O_TRUNC)
        os.write(fd, content)
        os.close(fd)
    def read():
        with open(f, "rb") as r:
            if r.read() != content:
                raise OSError(errno.EIO, "read back something else")
    attempt("create", create)
    attempt("open-write", write)
    attempt("open-read", read)
    attempt("stat", lambda: os.stat(f))
    attempt("chmod", lambda: os.chmod(f, 0o640))
    attempt("chown", lambda: os.chown(f, -1, int(args[3])))
    print("mode", mode(f), "gid", os.stat(f).st_gid == int(args[3]))
    attempt("rename", lambda: os.rename(f, g))
    attempt("stat-renamed", lambda: os.stat(g))
    attempt("unlink", lambda: os.unlink(g))
    attempt("gone", lambda: os.stat(g))
    attempt("mkdir", lambda: os.mkdir(d))
    attempt("rmdir", lambda: os.rmdir(d))
    dfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY)
    over = "o" * (4095 - len(p))
    attempt("mkdir-over", lambda: os.mkdir(over, dir_fd=dfd))
    if over in os.listdir(dfd):
        os.rmdir(over, dir_fd=dfd)
    os.close(dfd)
    # take the directories down again, deepest first
    while p != tree:
        os.rmdir(p)
        p = p.rsplit("/", 1)[0]
    print("cleaned")
elif op == "png":
    # a 1x1 PNG image, on stdout
    import struct, zlib
    def chunk(kind, data):
        body = kind + data
        return (struct.pack(">I", len(data)) + body +
                struct.pack(">I", zlib.crc32(body) & 0xffffffff))
    sys.stdout.buffer.write(
        b"\x89PNG\r\n\x1a\n" +
        chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) +
        chunk(b"IDAT", zlib.compress(b"\0\0\0\0")) + chunk(b"IEND", b""))
elif op == "setid":
    # In directory args[0]: every set-id case a file owner meets.  Values
    # are JSON numbers, so that each write keeps the file valid.
    d, member, other = args[0], int(args[1]), int(args[2])
    f = d + "/f"
    with open(f, "w") as w:
        w.write("1")
    for m in (0o4755, 0o2755, 0o2644, 0o6755, 0o6711, 0o4644):
        os.chmod(f, m)
        with open(f, "a") as w:
            w.write("2")
        print("append %o ->" % m, mode(f))
        os.chmod(f, m)
        fd = os.open(f, os.O_WRONLY)
        os.pwrite(fd, b"3", 0)
        os.close(fd)
        print("pwrite %o ->" % m, mode(f))
        os.chmod(f, m)
        os.truncate(f, 1)
        print("truncate %o ->" % m, mode(f))
        os.chmod(f, m)
        os.close(os.open(f, os.O_WRONLY | os.O_TRUNC))
        print("open-trunc %o ->" % m, mode(f))
        with open(f, "w") as w:
            w.write("1")
        for uid, gid in ((-1, member), (-1, -1), (os.getuid(), -1),
                         (-1, os.getgid())):
            os.chmod(f, m)
            attempt("chown %o %d %d" % (m, uid, gid),
                    lambda: os.chown(f, uid, gid))
            s = os.stat(f)
            print("  ->", mode(f), s.st_uid == os.getuid(), s.st_gid)
    attempt("chown to a group not ours", lambda: os.chown(f, -1, other))
    attempt("chown to another owner", lambda: os.chown(f, 0 if os.getuid() else 1, -1))
    print("  ->", mode(f), os.stat(f).st_gid)
    sub = d + "/g"
    os.mkdir(sub)
    os.chown(sub, -1, member)
    os.chmod(sub, 0o2775)
    with open(sub + "/f", "w") as w:
        w.write("1")
    os.mkdir(sub + "/d", 0o755)
    os.close(os.open(sub + "/x", os.O_CREAT | os.O_WRONLY, 0o2755))
    for n in ("f", "d", "x"):
        s = os.stat(sub + "/" + n)
        print("in a set-group-ID directory:", n, mode(sub + "/" + n), s.st_gid)
    os.chmod(sub + "/d", 0o755)
    print("chmod g-s of a directory:", mode(sub + "/d"))
    # prepared by root: ours, in a group we are not in
    with open(d + "/foreign", "a") as w:
        w.write("2")
    print("append to a 2664 file of another group:", mode(d + "/foreign"))
    attempt("chmod g+s in another group",
            lambda: os.chmod(d + "/nonmember", 0o2755))
    print("  ->", mode(d + "/nonmember"))
else:
    sys.exit("posix.py: unknown operation " + op)
'

posix_py()
{
	timeout "$OP_TIMEOUT" "$PYTHON" -c "$POSIX_PY" "$@"
}

# times PATH: "MTIME CTIME" of PATH in nanoseconds.
times()
{
	posix_py times "$1"
}

# changed BEFORE AFTER: both the mtime and the ctime went forward.
changed()
{
	local bm bc am ac
	read -r bm bc <<<"$1"
	read -r am ac <<<"$2"
	[ "$am" -gt "$bm" ] && [ "$ac" -gt "$bc" ] ||
		fail "times did not go forward: before '$1', after '$2'"
}

# ctime_changed BEFORE AFTER: the ctime went forward.
ctime_changed()
{
	local bm bc am ac
	read -r bm bc <<<"$1"
	read -r am ac <<<"$2"
	[ "$ac" -gt "$bc" ] || fail "ctime did not go forward: before '$1', after '$2'"
}

# ------------------------------------------------------------ long paths

# longpath_ok TREE CONTENT GID OVER [as_user]: the long-path script in
# $MNT under TREE, every operation answered OK, the one past PATH_MAX - 1
# answered OVER.
longpath_ok()
{
	local tree=$1 content=$2 gid=$3 over=$4 out want
	shift 4
	out=$("$@" timeout "$OP_TIMEOUT" "$PYTHON" -c "$POSIX_PY" longpath \
		"$MNT" "$tree" "$content" "$gid" 2>&1) ||
		fail "longpath $tree failed: $out" || return 1
	want="length 4095
create OK
open-write OK
open-read OK
stat OK
chmod OK
chown OK
mode 640 gid True
rename OK
stat-renamed OK
unlink OK
gone ENOENT
mkdir OK
rmdir OK
mkdir-over $over
cleaned"
	[ "$out" = "$want" ] || fail "longpath $tree:" "$out" || return 1
}

@test "a path of PATH_MAX - 1 bytes below the mount works in every tree, as root" {
	need_root
	mount_dsfs
	mkdir "$MNT/devices/dev" "$MNT/kv/m" "$MNT/runtime/kv/r" \
		"$MNT/ephemeral/kv/e" "$MNT/images/i"
	longpath_ok kv/m 1 0 ENAMETOOLONG
	longpath_ok runtime/kv/r '"r"' 0 OK
	longpath_ok ephemeral/kv/e '[1]' 0 OK
	longpath_ok devices/dev '{}' 0 OK
	[ -z "$(ls -A "$MNT/kv/m")" ]
}

@test "a path of PATH_MAX - 1 bytes below the mount works for an unprivileged user" {
	need_root
	mount_dsfs -o allow_other
	local d
	for d in kv/m runtime/kv/r ephemeral/kv/e devices/dev; do
		mkdir "$MNT/$d"
		chown "$NOBODY_UID:$NOBODY_GID" "$MNT/$d"
	done
	longpath_ok kv/m 1 "$MEMBER_GID" ENAMETOOLONG as_user
	longpath_ok runtime/kv/r 2 "$MEMBER_GID" OK as_user
	longpath_ok ephemeral/kv/e 3 "$MEMBER_GID" OK as_user
	longpath_ok devices/dev 4 "$MEMBER_GID" OK as_user
}

@test "an image at a path of PATH_MAX - 1 bytes below the mount" {
	need_root
	mount_dsfs
	posix_py png >"$T/one.png"
	mkdir "$MNT/images/i"
	longpath_ok images/i "@$T/one.png" 0 ENAMETOOLONG
}

# ----------------------------------------------------------- link counts

# nlink_ok DIR [as_user]: DIR's link count is 2 plus the directories that
# a listing of it shows.
nlink_ok()
{
	local dir=$1 n=2 e got
	shift
	for e in "$dir"/* "$dir"/.[!.]*; do
		[ -d "$e" ] && n=$((n + 1))
	done
	got=$("$@" stat -c %h "$dir") || fail "stat $dir failed" || return 1
	[ "$got" = "$n" ] ||
		fail "$dir: link count $got, $n expected ($(ls -A "$dir" | tr '\n' ' '))"
}

@test "a directory's link count is 2 plus its subdirectories, in every tree; a file's is 1" {
	need_root
	mkdir -p "$T/f/kv/m/fa" "$T/f/kv/m/fb" "$T/f/kv/m/shared" \
		"$T/f/kv/only" "$T/f/devices/dev/sub"
	echo 1 >"$T/f/kv/m/file"
	make_factory "$T/f"
	mount_dsfs -o allow_other
	mkdir "$MNT/kv/m/rt" "$MNT/ephemeral/kv/m" "$MNT/ephemeral/kv/m/ep" \
		"$MNT/ephemeral/kv/m/shared"
	rmdir "$MNT/kv/m/fb"
	echo 2 >"$MNT/kv/m/rtfile"
	# kv/m merges fa, shared (factory and ephemeral), rt (runtime), ep;
	# fb is whited out
	[ "$(stat -c %h "$MNT/kv/m")" = 6 ]
	[ "$(stat -c %h "$MNT/factory/kv/m")" = 5 ]
	[ "$(stat -c %h "$MNT/runtime/kv/m")" = 3 ]
	[ "$(stat -c %h "$MNT/ephemeral/kv/m")" = 4 ]
	[ "$(stat -c %h "$MNT")" = 8 ]
	[ "$(stat -c %h "$MNT/runtime")" = 5 ]
	[ "$(stat -c %h "$MNT/kv/m/file")" = 1 ]
	[ "$(stat -c %h "$MNT/kv/m/rtfile")" = 1 ]
	local d
	for d in "" runtime factory ephemeral kv kv/m kv/m/fa kv/only images \
		devices devices/dev kv/__dev runtime/kv runtime/kv/m \
		ephemeral/kv ephemeral/kv/m factory/kv factory/kv/m \
		factory/devices; do
		nlink_ok "$MNT/$d"
		nlink_ok "$MNT/$d" as_user
	done
	# made and removed below the kernel's cached attributes
	mkdir "$MNT/kv/m/new"
	[ "$(stat -c %h "$MNT/kv/m")" = 7 ]
	mkdir "$MNT/devices/dev/sub2"
	[ "$(stat -c %h "$MNT/devices/dev")" = 4 ]
	[ "$(stat -c %h "$MNT/kv/__dev")" = 4 ]
	rmdir "$MNT/kv/m/new" "$MNT/kv/m/shared"
	# shared is still in factory: whited out, not counted
	[ "$(stat -c %h "$MNT/kv/m")" = 5 ]
	[ "$(stat -c %h "$MNT/kv")" = 5 ]
	mkdir "$MNT/kv/more"
	[ "$(stat -c %h "$MNT/kv")" = 6 ]
	[ "$(stat -c %h "$MNT/runtime/kv")" = 5 ]
}

@test "a file's create, write, rename and unlink keep the link count; a file hiding or uncovering a lower layer's directory changes it" {
	mkdir -p "$T/f/kv/fd" "$T/f/kv/fd2"
	make_factory "$T/f"
	mount_dsfs
	mkdir "$MNT/kv/rd"
	[ "$(stat -c %h "$MNT/kv")" = 5 ]
	local i
	for i in 1 2 3; do
		echo "$i" >"$MNT/kv/f$i"
		[ "$(stat -c %h "$MNT/kv")" = 5 ]
	done
	mv "$MNT/kv/f1" "$MNT/kv/f4"
	rm "$MNT/kv/f2"
	nlink_ok "$MNT/kv"
	# ephemeral's file hides runtime's directory, then uncovers it
	echo 1 >"$MNT/ephemeral/kv/rd"
	[ -f "$MNT/kv/rd" ]
	nlink_ok "$MNT/kv"
	[ "$(stat -c %h "$MNT/kv")" = 4 ]
	rm "$MNT/ephemeral/kv/rd"
	[ "$(stat -c %h "$MNT/kv")" = 5 ]
	# runtime's file hides the factory's directory, then uncovers it
	echo 1 >"$MNT/runtime/kv/fd"
	[ "$(stat -c %h "$MNT/kv")" = 4 ]
	nlink_ok "$MNT/runtime/kv"
	mv "$MNT/runtime/kv/fd" "$MNT/runtime/kv/fd2"
	[ "$(stat -c %h "$MNT/kv")" = 4 ]
	[ -d "$MNT/kv/fd" ] && [ -f "$MNT/kv/fd2" ]
	rm "$MNT/runtime/kv/fd2"
	[ "$(stat -c %h "$MNT/kv")" = 5 ]
	# a scratch file of ephemeral renamed over a merged name
	echo 1 >"$MNT/ephemeral/kv/fd3"
	mv "$MNT/ephemeral/kv/fd3" "$MNT/ephemeral/kv/rd"
	[ "$(stat -c %h "$MNT/kv")" = 4 ]
	rm "$MNT/kv/rd"
	nlink_ok "$MNT/kv"
	nlink_ok "$MNT/runtime/kv"
	nlink_ok "$MNT/ephemeral/kv"
}

@test "every directory of the mount, opaque ones included, counts its subdirectories" {
	mkdir -p "$T/f/kv/a/b/c" "$T/f/kv/a/x/hidden" "$T/f/devices/d1/s"
	make_factory "$T/f"
	mount_dsfs
	mkdir -p "$MNT/kv/a/b/r1/r2" "$MNT/ephemeral/kv/a/e1" "$MNT/kv/a/y"
	echo 1 >"$MNT/kv/a/b/v"
	# removed and made again: opaque, the factory's hidden/ stays hidden
	rm -r "$MNT/kv/a/x"
	mkdir "$MNT/kv/a/x" "$MNT/kv/a/x/new"
	[ "$(stat -c %h "$MNT/kv/a/x")" = 3 ]
	local out
	out=$(timeout "$OP_TIMEOUT" "$PYTHON" -c '
import os, sys
bad = 0
for top, dirs, files in os.walk(sys.argv[1]):
    n = os.stat(top).st_nlink
    if n != 2 + len(dirs):
        print(top, n, "links for", len(dirs), "subdirectories")
        bad += 1
print("bad", bad)
' "$MNT")
	[ "$out" = "bad 0" ] || fail "$out"
	[ "$(cd "$MNT/kv" && find . -type d | sort)" = "$(printf '%s\n' . \
		./__d1 ./__d1/s ./a ./a/b ./a/b/c ./a/b/r1 ./a/b/r1/r2 ./a/e1 \
		./a/x ./a/x/new ./a/y)" ]
}

# ------------------------------------------------------- directory times

# step DIR CMD...: runs CMD and checks that DIR's mtime and ctime went
# forward.
step()
{
	local dir=$1 before after
	shift
	before=$(times "$dir") || return 1
	sleep 0.02
	"$@" || fail "$* failed" || return 1
	after=$(times "$dir") || return 1
	changed "$before" "$after" || fail "after $*: $dir" || return 1
}

# dir_times_ok DIR OTHER [as_user]: making, removing and renaming names in
# DIR (and between DIR and OTHER) updates the directories' times.
dir_times_ok()
{
	local dir=$1 other=$2
	shift 2
	step "$dir" "$@" sh -c ': >"$1/f"' _ "$dir" || return 1
	step "$dir" "$@" mkdir "$dir/sd" || return 1
	step "$dir" "$@" rmdir "$dir/sd" || return 1
	step "$dir" "$@" mv "$dir/f" "$dir/g" || return 1
	step "$other" step "$dir" "$@" mv "$dir/g" "$other/g" || return 1
	step "$dir" "$@" mv "$other/g" "$dir/g" || return 1
	step "$dir" "$@" rm "$dir/g" || return 1
}

@test "a made, removed or renamed name updates its directory's mtime and ctime, in every tree" {
	need_root
	mount_dsfs
	mkdir -p "$MNT/kv/d/o" "$MNT/runtime/kv/r/o" "$MNT/ephemeral/kv/e/o" \
		"$MNT/devices/dev/o" "$MNT/images/i/o"
	dir_times_ok "$MNT/kv/d" "$MNT/kv/d/o"
	dir_times_ok "$MNT/runtime/kv/r" "$MNT/runtime/kv/r/o"
	dir_times_ok "$MNT/ephemeral/kv/e" "$MNT/ephemeral/kv/e/o"
	dir_times_ok "$MNT/devices/dev" "$MNT/devices/dev/o"
	dir_times_ok "$MNT/images/i" "$MNT/images/i/o"
	# the roots of the trees
	dir_times_ok "$MNT/kv" "$MNT/kv/d"
	dir_times_ok "$MNT/images" "$MNT/images/i"
	dir_times_ok "$MNT/runtime/kv" "$MNT/runtime/kv/r"
	dir_times_ok "$MNT/ephemeral/images" "$MNT/kv/d"
	step "$MNT/devices" mkdir "$MNT/devices/new"
	step "$MNT/devices" step "$MNT/kv" rmdir "$MNT/kv/__new"
}

@test "an unprivileged user's changes update its directories' times" {
	need_root
	mount_dsfs -o allow_other
	local d
	for d in kv/d runtime/kv/r ephemeral/kv/e devices/dev; do
		mkdir -p "$MNT/$d/o"
		chown -R "$NOBODY_UID:$NOBODY_GID" "$MNT/$d"
		dir_times_ok "$MNT/$d" "$MNT/$d/o" as_user
	done
}

@test "a merged directory's times follow changes made through it and through its layers" {
	mkdir -p "$T/f/kv/m"
	echo 1 >"$T/f/kv/m/fv"
	make_factory "$T/f"
	mount_dsfs
	mkdir "$MNT/ephemeral/kv/m"
	local f0
	f0=$(times "$MNT/factory/kv/m")
	# a new name goes to runtime (m is copied up there); the merged view
	# shows the ephemeral directory, whose times change too
	step "$MNT/kv/m" step "$MNT/ephemeral/kv/m" \
		sh -c "echo 2 >'$MNT/kv/m/new'"
	step "$MNT/kv/m" step "$MNT/runtime/kv/m" step "$MNT/ephemeral/kv/m" \
		sh -c "echo 2 >'$MNT/kv/m/new2'"
	# removing a factory value leaves a whiteout in runtime
	step "$MNT/kv/m" step "$MNT/runtime/kv/m" rm "$MNT/kv/m/fv"
	step "$MNT/kv/m" step "$MNT/ephemeral/kv/m" \
		sh -c "echo 3 >'$MNT/ephemeral/kv/m/e'"
	step "$MNT/kv/m" step "$MNT/runtime/kv/m" rm "$MNT/runtime/kv/m/new"
	# the factory layer's directory never changes
	[ "$(times "$MNT/factory/kv/m")" = "$f0" ]
	# kept across a remount
	local kept
	kept=$(times "$MNT/runtime/kv/m")
	remount_dsfs
	[ "$(times "$MNT/runtime/kv/m")" = "$kept" ]
}

# file_times_ok FILE [as_user]: chmod, chown, utimens and truncate update
# FILE's ctime; a committed write its mtime and ctime.
file_times_ok()
{
	local f=$1 before after
	shift
	before=$(times "$f")
	sleep 0.02
	"$@" chmod 640 "$f" || return 1
	after=$(times "$f")
	ctime_changed "$before" "$after" || fail "chmod $f" || return 1
	before=$after
	sleep 0.02
	"$@" chgrp "$("$@" id -g)" "$f" || return 1
	after=$(times "$f")
	ctime_changed "$before" "$after" || fail "chgrp $f" || return 1
	before=$after
	sleep 0.02
	"$@" "$PYTHON" -c 'import os, sys; os.chown(sys.argv[1], -1, -1)' "$f" ||
		return 1
	after=$(times "$f")
	ctime_changed "$before" "$after" || fail "chown -1 -1 $f" || return 1
	before=$after
	sleep 0.02
	"$@" touch -m -d '2001-01-01' "$f" || return 1
	after=$(times "$f")
	ctime_changed "$before" "$after" || fail "touch -d $f" || return 1
	before=$after
	sleep 0.02
	"$@" truncate -s 1 "$f" || return 1
	after=$(times "$f")
	ctime_changed "$before" "$after" || fail "truncate $f" || return 1
	before=$after
	sleep 0.02
	"$@" sh -c 'echo 7 >"$1"' _ "$f" || return 1
	after=$(times "$f")
	changed "$before" "$after" || fail "write $f" || return 1
}

@test "chmod, chown, utimens and truncate update ctime; a committed write mtime and ctime" {
	need_root
	mount_dsfs -o allow_other
	local f
	mkdir "$MNT/devices/dev"
	for f in kv/x runtime/kv/r ephemeral/kv/e devices/dev/x; do
		echo 12 >"$MNT/$f"
		file_times_ok "$MNT/$f"
		chown "$NOBODY_UID:$NOBODY_GID" "$MNT/$f"
		file_times_ok "$MNT/$f" as_user
	done
}

# ----------------------------------------------------- set-id and chown

# setid_same DIR [as_user]: the set-id script gives the same answers in DIR
# (on the mount) as in a directory of the local filesystem; prints them.
setid_same()
{
	local dir=$1 ref out d
	shift
	ref=$(mktemp -d "$T/ref.XXXXXX")
	for d in "$ref" "$dir"; do
		mkdir -p "$d"
		printf 1 >"$d/foreign"
		echo 1 >"$d/nonmember"
		chown "$NOBODY_UID:$OTHER_GID" "$d/foreign" "$d/nonmember"
		chmod 2664 "$d/foreign"
		chmod 755 "$d/nonmember"
		if [ $# -gt 0 ]; then
			chown "$NOBODY_UID:$NOBODY_GID" "$d"
		fi
	done
	chmod 755 "$ref"
	want=$("$@" timeout "$OP_TIMEOUT" "$PYTHON" -c "$POSIX_PY" setid \
		"$ref" "$MEMBER_GID" "$OTHER_GID" 2>&1) ||
		fail "the set-id script failed on the local filesystem: $want" ||
		return 1
	out=$("$@" timeout "$OP_TIMEOUT" "$PYTHON" -c "$POSIX_PY" setid \
		"$dir" "$MEMBER_GID" "$OTHER_GID" 2>&1) ||
		fail "the set-id script failed in $dir: $out" || return 1
	[ "$out" = "$want" ] ||
		fail "$dir differs from a local filesystem:" \
			"$(diff <(echo "$want") <(echo "$out"))" || return 1
	echo "$out"
}

@test "set-id bits and chown by an unprivileged owner behave as on a local filesystem, in every tree" {
	need_root
	mount_dsfs -o allow_other
	mkdir "$MNT/devices/dev" "$MNT/kv/s"
	local d out
	for d in kv/s/in runtime/kv/r ephemeral/kv/e devices/dev/d; do
		out=$(setid_same "$MNT/$d" as_user)
		# what a write by a process without CAP_FSETID clears
		grep -qx 'append 4755 -> 755' <<<"$out"
		grep -qx 'pwrite 6755 -> 755' <<<"$out"
		grep -qx 'open-trunc 2755 -> 755' <<<"$out"
		grep -qx 'append 2644 -> 2644' <<<"$out"
		grep -qx 'append to a 2664 file of another group: 664' <<<"$out"
		# chown: to one of its groups, and -1, clear the bits; the
		# owner cannot give the file away
		grep -qx "chown 4755 -1 $MEMBER_GID OK" <<<"$out"
		grep -qx 'chown to a group not ours EPERM' <<<"$out"
		grep -qx 'chown to another owner EPERM' <<<"$out"
		grep -qx "in a set-group-ID directory: d 2755 $MEMBER_GID" <<<"$out"
		grep -qx "in a set-group-ID directory: f 644 $MEMBER_GID" <<<"$out"
	done
	[ "$(stat -c %g "$MNT/kv/s/in/g/f")" = "$MEMBER_GID" ]
	remount_dsfs -o allow_other
	[ "$(stat -c %a:%g "$MNT/kv/s/in/g")" = "2775:$MEMBER_GID" ]
	[ "$(stat -c %a:%g "$MNT/kv/s/in/g/x")" = "2755:$MEMBER_GID" ]
	[ "$(stat -c %a:%g "$MNT/runtime/kv/r/g/f")" = "644:$MEMBER_GID" ]
	[ "$(stat -c %a:%g "$MNT/runtime/kv/r/f")" = "644:$NOBODY_GID" ]
}

@test "set-id bits and chown by root behave as on a local filesystem, in every tree" {
	need_root
	mount_dsfs
	mkdir "$MNT/devices/dev" "$MNT/kv/s"
	local d out
	for d in kv/s/in runtime/kv/r ephemeral/kv/e devices/dev/d; do
		out=$(setid_same "$MNT/$d")
		# CAP_FSETID keeps the bits through writes; chown clears them
		grep -qx 'append 4755 -> 4755' <<<"$out"
		grep -qx 'open-trunc 6755 -> 6755' <<<"$out"
		grep -qx 'chown to another owner OK' <<<"$out"
	done
}

@test "a new entry takes the group of the set-group-ID directory the merged view shows, even when a layer below holds it without the bit" {
	mount_dsfs
	mkdir "$MNT/runtime/kv/both" "$MNT/runtime/kv/low"
	mkdir "$MNT/ephemeral/kv/both"
	chown ":$MEMBER_GID" "$MNT/ephemeral/kv/both" "$MNT/runtime/kv/low"
	chmod 2775 "$MNT/ephemeral/kv/both" "$MNT/runtime/kv/low"
	[ "$(stat -c %a:%g "$MNT/kv/both")" = "2775:$MEMBER_GID" ]
	[ "$(stat -c %a:%g "$MNT/runtime/kv/both")" = "755:0" ]
	echo 1 >"$MNT/kv/both/f"
	mkdir "$MNT/kv/both/d"
	# made in the runtime layer, with the group the merged view showed
	[ "$(stat -c %a:%g "$MNT/runtime/kv/both/f")" = "644:$MEMBER_GID" ]
	[ "$(stat -c %a:%g "$MNT/runtime/kv/both/d")" = "2755:$MEMBER_GID" ]
	# and a directory the ephemeral layer does not hold gives its own
	mkdir "$MNT/ephemeral/kv/low"
	chmod 755 "$MNT/ephemeral/kv/low"
	rmdir "$MNT/ephemeral/kv/low"
	echo 2 >"$MNT/kv/low/f"
	[ "$(stat -c %a:%g "$MNT/runtime/kv/low/f")" = "644:$MEMBER_GID" ]
	# a directory that only the ephemeral layer holds is copied up with
	# its group and bit
	mkdir "$MNT/ephemeral/kv/top"
	chown ":$MEMBER_GID" "$MNT/ephemeral/kv/top"
	chmod 2770 "$MNT/ephemeral/kv/top"
	echo 3 >"$MNT/kv/top/f"
	[ "$(stat -c %a:%g "$MNT/kv/top/f")" = "644:$MEMBER_GID" ]
}

@test "a write by root without CAP_FSETID clears the set-id bits" {
	need_root
	mount_dsfs
	printf 1 >"$MNT/kv/x"
	chmod 6755 "$MNT/kv/x"
	timeout "$OP_TIMEOUT" setpriv --inh-caps=-fsetid --bounding-set=-fsetid \
		-- sh -c "printf 2 >>'$MNT/kv/x'"
	[ "$(stat -c %a "$MNT/kv/x")" = 755 ]
	assert_content "$MNT/kv/x" 12
	# the factory value copied up by the write loses them too
	mkdir -p "$T/f/kv"
	echo 3 >"$T/f/kv/fv"
	chmod 4755 "$T/f/kv/fv"
	unmount_dsfs
	make_factory "$T/f"
	mount_dsfs -o allow_other
	[ "$(stat -c %a "$MNT/kv/fv")" = 4755 ]
	chown "$NOBODY_UID" "$MNT/kv/fv"
	chmod 4755 "$MNT/kv/fv"
	as_user sh -c "echo 4 >'$MNT/kv/fv'"
	[ "$(stat -c %a "$MNT/kv/fv")" = 755 ]
	[ "$(stat -c %a "$MNT/factory/kv/fv")" = 4755 ]
}

@test "-o inode_cache: past it the kernel forgets unused files, never one in use, and every value reads back" {
	mount_dsfs_fg -o inode_cache=200
	mkdir "$MNT/kv/d"
	run tmo "$PYTHON" -c '
import os, sys
d = sys.argv[1]
for i in range(1000):
    with open(os.path.join(d, "f%d" % i), "w") as f:
        f.write("%d\n" % i)
' "$MNT/kv/d"
	[ "$status" -eq 0 ] || fail "$output"
	first=$(stat -c %i "$MNT/kv/d/f0")
	exec 7<"$MNT/kv/d/f1"
	held=$(stat -c %i "$MNT/kv/d/f1")
	# Two walks of five times the bound: stat each name, read every
	# tenth, list the directory with its attributes.
	run tmo "$PYTHON" -c '
import os, sys
d = sys.argv[1]
for walk in range(2):
    for i in range(1000):
        os.stat(os.path.join(d, "f%d" % i))
        if i % 10 == 0:
            with open(os.path.join(d, "f%d" % i)) as f:
                v = f.read()
            if v != "%d\n" % i:
                sys.exit("f%d reads %r" % (i, v))
    names = sorted(os.listdir(d))
    if len(names) != 1000:
        sys.exit("%d names listed" % len(names))
' "$MNT/kv/d"
	[ "$status" -eq 0 ] || fail "$output"
	now_held=$(stat -c %i "$MNT/kv/d/f1")
	held_reads=$(cat <&7)
	exec 7<&-
	[ "$(ls -l "$MNT/kv/d" | grep -c '^-rw')" -eq 1000 ]
	# f0 was given back and looked up anew: a new inode number.  f1,
	# open all along, kept its own, and read as it did.
	[ "$(stat -c %i "$MNT/kv/d/f0")" != "$first" ] ||
		fail "f0 still has inode $first: nothing was forgotten"
	[ "$now_held" = "$held" ]
	[ "$held_reads" = 1 ]
	[ "$(cat "$MNT/kv/d/f0")" = 0 ]
	# Linux 6.18 takes a batch of inodes in one message (FUSE protocol
	# 7.45); an older kernel refuses it once, and names are dropped one
	# by one after that, as the log says.
	local major minor
	IFS=. read -r major minor _ <<<"$(uname -r)"
	if [ "$major" -gt 6 ] || { [ "$major" -eq 6 ] && [ "${minor%%[!0-9]*}" -ge 18 ]; }; then
		! grep -q "refused to prune" "$T/log" ||
			fail "Linux $(uname -r) refused the batch: $(cat "$T/log")"
	fi
}
