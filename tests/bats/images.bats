#!/usr/bin/env bats
# images.bats - images/: any PNG, JPEG, GIF, BMP or WebP is stored byte for
# byte; its MIME type and a content token (the SHA-256 of its bytes) are
# extended attributes; images/.by-token/TOKEN opens it read-only; anything
# that is not an image fails with EINVAL (at once, or at close when still
# incomplete) and leaves the old content; big images, readers across a
# replace, the ephemeral layer, budgets, durability and factory copy-up.
#
# The images are generated with python at test time (no binary fixtures).

load helpers

setup()
{
	setup_store
	D=$T/data
	mkdir -p "$D"
}

teardown()
{
	teardown_store
}

# mkimg TYPE FILE [SEED [SIZE]]: writes a small image of TYPE (png, jpeg,
# gif, bmp, bmp12, bmp124, webp) to FILE.  SEED varies the content (same
# seed, same bytes).  With SIZE, the image's signature and header are
# followed by deterministic pseudo-random bytes up to SIZE bytes.
DSFS_MKIMG='
import random, struct, sys, zlib
typ, path = sys.argv[1], sys.argv[2]
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
size = int(sys.argv[4]) if len(sys.argv) > 4 else 0
rnd = random.Random(seed * 7919 + len(typ))

def png():
    w, h = 4, 4
    raw = b"".join(b"\0" + rnd.randbytes(w * 3) for _ in range(h))
    def chunk(t, d):
        return (struct.pack(">I", len(d)) + t + d +
                struct.pack(">I", zlib.crc32(t + d) & 0xffffffff))
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

def jpeg():
    app0 = b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    com = b"dsfs test %d " % seed + rnd.randbytes(8).hex().encode()
    return (b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", len(app0) + 2) +
            app0 + b"\xff\xfe" + struct.pack(">H", len(com) + 2) + com +
            b"\xff\xd9")

def gif():
    return (b"GIF89a" + struct.pack("<HH", 1, 1) + b"\x80\0\0" +
            rnd.randbytes(6) + b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) +
            b"\0" + b"\x02\x02\x44\x01\0" + b"\x3b")

def bmp(dib=40):
    w, h = 2, 2
    row = (w * 3 + 3) & ~3
    pixels = b"".join(rnd.randbytes(w * 3) + b"\0" * (row - w * 3)
                      for _ in range(h))
    if dib == 12:
        hdr = struct.pack("<IHHHH", 12, w, h, 1, 24)
    else:
        hdr = struct.pack("<IiiHHIIiiII", dib, w, h, 1, 24, 0, len(pixels),
                          2835, 2835, 0, 0)
        hdr += b"\0" * (dib - len(hdr))
    off = 14 + len(hdr)
    return (b"BM" + struct.pack("<IHHI", off + len(pixels), 0, 0, off) +
            hdr + pixels)

def webp():
    vp8l = b"\x2f\0\0\0\x10\x07\x10\x11\x11\x88\x88\xfe\x07"
    chunks = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l + b"\0"
    extra = rnd.randbytes(8)
    chunks += b"XTRA" + struct.pack("<I", len(extra)) + extra
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks

gen = {"png": png, "jpeg": jpeg, "gif": gif, "bmp": bmp,
       "bmp12": lambda: bmp(12), "bmp124": lambda: bmp(124), "webp": webp}
data = gen[typ]()
if size:
    data = (data + rnd.randbytes(size))[:size]
with open(path, "wb") as f:
    f.write(data)
'

mkimg()
{
	"$PYTHON" -c "$DSFS_MKIMG" "$@" || fail "mkimg $* failed"
}

# sha FILE: the lowercase hex SHA-256 of FILE.
sha()
{
	sha256sum <"$1" | cut -d' ' -f1
}

# same FILE1 FILE2: the two files have the same bytes (says how they
# differ otherwise).
same()
{
	timeout "$OP_TIMEOUT" cmp "$1" "$2" >&2 ||
		fail "$1 and $2 differ (sizes $(stat -c %s "$1" 2>&1) and $(stat -c %s "$2" 2>&1))"
}

mime_of()
{
	case $1 in
	png) echo image/png ;;
	jpeg) echo image/jpeg ;;
	gif) echo image/gif ;;
	bmp*) echo image/bmp ;;
	webp) echo image/webp ;;
	esac
}

@test "PNG, JPEG, GIF, BMP and WebP are stored byte for byte with their MIME type" {
	mount_dsfs
	local t
	for t in png jpeg gif bmp bmp12 bmp124 webp; do
		mkimg "$t" "$D/$t"
		tmo cp "$D/$t" "$MNT/images/$t" || fail "cp $t failed"
	done
	[ "$(ls1 "$MNT/images")" = "$(printf '%s\n' bmp bmp12 bmp124 gif jpeg png webp)" ] ||
		fail "images/ lists: $(ls1 "$MNT/images")"
	for t in png jpeg gif bmp bmp12 bmp124 webp; do
		same "$D/$t" "$MNT/images/$t"
		same "$D/$t" "$MNT/runtime/images/$t"
		[ "$(stat -c %s "$MNT/images/$t")" = "$(stat -c %s "$D/$t")" ] ||
			fail "$t: st_size $(stat -c %s "$MNT/images/$t")"
		[ "$(xattr "$MNT/images/$t" user.dsfs.type)" = "$(mime_of "$t")" ] ||
			fail "$t: user.dsfs.type is '$(xattr "$MNT/images/$t" user.dsfs.type)'"
		[ "$(xattr "$MNT/images/$t" user.dsfs.layer)" = runtime ] ||
			fail "$t: user.dsfs.layer is '$(xattr "$MNT/images/$t" user.dsfs.layer)'"
	done
	# With getfattr as a user would ask.
	run getfattr --absolute-names --only-values -n user.dsfs.type "$MNT/images/png"
	[ "$status" -eq 0 ] && [ "$output" = image/png ] ||
		fail "getfattr: $status '$output'"
	# Re-reading after a remount (no kernel cache) gives the same bytes.
	remount_dsfs
	for t in png jpeg gif bmp bmp12 bmp124 webp; do
		same "$D/$t" "$MNT/images/$t"
		[ "$(xattr "$MNT/images/$t" user.dsfs.type)" = "$(mime_of "$t")" ]
	done
}

@test "user.dsfs.token is the sha256 of the bytes; equal images share it; stable across remount" {
	mount_dsfs
	mkimg png "$D/a.png" 1
	mkimg png "$D/b.png" 2
	mkimg gif "$D/c.gif" 3
	tmo cp "$D/a.png" "$MNT/images/a"
	tmo cp "$D/a.png" "$MNT/images/a-again"
	tmo cp "$D/b.png" "$MNT/images/b"
	tmo cp "$D/c.gif" "$MNT/ephemeral/images/c"
	local ta tb tc
	ta=$(xattr "$MNT/images/a" user.dsfs.token)
	tb=$(xattr "$MNT/images/b" user.dsfs.token)
	tc=$(xattr "$MNT/images/c" user.dsfs.token)
	[[ $ta =~ ^[0-9a-f]{64}$ ]] || fail "token of a is '$ta'"
	[ "$ta" = "$(sha "$D/a.png")" ] || fail "token of a $ta != sha256 $(sha "$D/a.png")"
	[ "$tb" = "$(sha "$D/b.png")" ] || fail "token of b $tb != sha256 $(sha "$D/b.png")"
	[ "$tc" = "$(sha "$D/c.gif")" ] || fail "token of c $tc != sha256 $(sha "$D/c.gif")"
	[ "$ta" != "$tb" ]
	[ "$(xattr "$MNT/images/a-again" user.dsfs.token)" = "$ta" ]
	# getfattr prints the same.
	run getfattr --absolute-names --only-values -n user.dsfs.token "$MNT/images/a"
	[ "$status" -eq 0 ] && [ "$output" = "$ta" ] || fail "getfattr: $status '$output'"
	# Through the layer tree too.
	[ "$(xattr "$MNT/runtime/images/a" user.dsfs.token)" = "$ta" ]
	# Replacing the bytes changes the token.
	tmo cp "$D/b.png" "$MNT/images/a"
	[ "$(xattr "$MNT/images/a" user.dsfs.token)" = "$tb" ]
	[ "$(xattr "$MNT/images/a-again" user.dsfs.token)" = "$ta" ]
	remount_dsfs
	[ "$(xattr "$MNT/images/a" user.dsfs.token)" = "$tb" ]
	[ "$(xattr "$MNT/images/a-again" user.dsfs.token)" = "$ta" ]
	[ "$(xattr "$MNT/images/b" user.dsfs.token)" = "$tb" ]
	same "$D/a.png" "$MNT/images/a-again"
	# A JSON entry has no token.
	echo 1 >"$MNT/kv/n"
	[ "$(xattr "$MNT/kv/n" user.dsfs.token)" = ENODATA ]
}

@test "images/.by-token/TOKEN reads the image, read-only; unknown tokens are ENOENT; the directory lists nothing" {
	mount_dsfs
	mkimg jpeg "$D/a.jpg" 1
	mkimg webp "$D/e.webp" 2
	tmo cp "$D/a.jpg" "$MNT/images/a"
	tmo cp "$D/e.webp" "$MNT/ephemeral/images/e"
	local ta te
	ta=$(sha "$D/a.jpg")
	te=$(sha "$D/e.webp")
	same "$D/a.jpg" "$MNT/images/.by-token/$ta"
	same "$D/e.webp" "$MNT/images/.by-token/$te"
	[ "$(stat -c %s "$MNT/images/.by-token/$ta")" = "$(stat -c %s "$D/a.jpg")" ]
	# Read-only.
	assert_errno write "$MNT/images/.by-token/$ta" 'x' EROFS
	assert_errno open_wronly "$MNT/images/.by-token/$ta" EROFS
	assert_errno truncate "$MNT/images/.by-token/$ta" 0 EROFS
	assert_errno unlink "$MNT/images/.by-token/$ta" EROFS
	run tmo bash -c "echo x >'$MNT/images/.by-token/$ta'"
	[ "$status" -ne 0 ] && [[ $output == *"Read-only file system"* ]] ||
		fail "echo > .by-token/TOKEN: $status '$output'"
	same "$D/a.jpg" "$MNT/images/.by-token/$ta"
	same "$D/a.jpg" "$MNT/images/a"
	assert_errno create "$MNT/images/.by-token/$(printf '%064d' 0)" EROFS
	# Unknown tokens, and names that are not tokens.
	assert_errno read "$MNT/images/.by-token/$(printf '%064d' 0)" ENOENT
	assert_errno stat "$MNT/images/.by-token/${ta%?}" ENOENT
	assert_errno stat "$MNT/images/.by-token/${ta^^}" ENOENT
	assert_errno stat "$MNT/images/.by-token/nope" ENOENT
	# The directory lists nothing.
	[ -d "$MNT/images/.by-token" ]
	[ -z "$(ls1 "$MNT/images/.by-token")" ] ||
		fail ".by-token lists: $(ls1 "$MNT/images/.by-token")"
	[ -z "$(ls -A "$MNT/images/.by-token")" ]
	# A token whose last image is gone stops opening.
	rm "$MNT/images/a"
	assert_errno stat "$MNT/images/.by-token/$ta" ENOENT
	same "$D/e.webp" "$MNT/images/.by-token/$te"
}

@test "the name .by-token cannot be created under images/" {
	mount_dsfs
	mkimg png "$D/p" 1
	# In the layer trees nothing shadows it: EPERM.
	assert_errno mkdir "$MNT/runtime/images/.by-token" EPERM
	assert_errno create "$MNT/runtime/images/.by-token" EPERM
	assert_errno mkdir "$MNT/ephemeral/images/.by-token" EPERM
	assert_errno create "$MNT/ephemeral/images/.by-token" EPERM
	run tmo cp "$D/p" "$MNT/runtime/images/.by-token"
	[ "$status" -ne 0 ]
	# In images/ the name is taken by the token directory.
	run pyop mkdir "$MNT/images/.by-token"
	[[ $output == EPERM || $output == EEXIST ]] || fail "mkdir images/.by-token: $output"
	run pyop create "$MNT/images/.by-token"
	[[ $output == EPERM || $output == EEXIST ]] || fail "create images/.by-token: $output"
	tmo cp "$D/p" "$MNT/images/p"
	run pyop rename "$MNT/images/p" "$MNT/images/.by-token"
	[[ $output != OK ]] || fail "rename onto images/.by-token succeeded"
	run pyop rename "$MNT/runtime/images/p" "$MNT/runtime/images/.by-token"
	[ "$output" = EPERM ] || fail "rename to runtime/images/.by-token: $output"
	same "$D/p" "$MNT/images/p"
	[ "$(ls1 "$MNT/runtime/images")" = p ] ||
		fail "runtime/images lists: $(ls1 "$MNT/runtime/images")"
	[ -z "$(ls1 "$MNT/ephemeral/images")" ]
	# Under a subdirectory the name is an ordinary one.
	mkdir "$MNT/images/sub"
	tmo cp "$D/p" "$MNT/images/sub/.by-token"
	same "$D/p" "$MNT/images/sub/.by-token"
}

@test "non-image content fails with EINVAL at once and leaves the old image" {
	mount_dsfs
	mkimg png "$D/old" 1
	printf 'just some notes\n' >"$D/notes.txt"
	tmo cp "$D/old" "$MNT/images/x"
	run tmo cp "$D/notes.txt" "$MNT/images/x"
	[ "$status" -ne 0 ] && [[ $output == *"Invalid argument"* ]] ||
		fail "cp notes.txt over images/x: $status '$output'"
	same "$D/old" "$MNT/images/x"
	[ "$(xattr "$MNT/images/x" user.dsfs.token)" = "$(sha "$D/old")" ]
	# A new name: cp fails too, and no image appears.
	run tmo cp "$D/notes.txt" "$MNT/images/y"
	[ "$status" -ne 0 ] && [[ $output == *"Invalid argument"* ]] ||
		fail "cp notes.txt to images/y: $status '$output'"
	# The very first write fails, not only the close.
	run pyop write_steps "$MNT/images/x" 'just some notes'
	[[ $output == "write=EINVAL "* ]] || fail "write_steps: $output"
	same "$D/old" "$MNT/images/x"
	# A wrong byte after a valid start fails as soon as it is written.
	run pyop write_steps "$MNT/images/x" $'\x89PN' $'X\r\n\x1a\n'
	[[ $output == "write=OK write=EINVAL "* ]] || fail "write_steps: $output"
	same "$D/old" "$MNT/images/x"
	# BMP with a DIB header size that no BMP has; RIFF that is not WebP.
	"$PYTHON" -c 'import sys; sys.stdout.buffer.write(b"BM" + b"\0"*12 + b"\x14\0\0\0" + b"\0"*30)' >"$D/badbmp"
	run tmo cp "$D/badbmp" "$MNT/images/x"
	[ "$status" -ne 0 ] && [[ $output == *"Invalid argument"* ]] ||
		fail "cp badbmp: $status '$output'"
	"$PYTHON" -c 'import sys; sys.stdout.buffer.write(b"RIFF\x24\0\0\0WAVEfmt " + b"\0"*40)' >"$D/wav"
	run tmo cp "$D/wav" "$MNT/images/x"
	[ "$status" -ne 0 ] && [[ $output == *"Invalid argument"* ]] ||
		fail "cp wav: $status '$output'"
	# JSON is not an image either.
	run tmo bash -c "echo '{\"a\": 1}' >'$MNT/images/x'"
	[ "$status" -ne 0 ] && [[ $output == *"Invalid argument"* ]] ||
		fail "echo JSON > images/x: $status '$output'"
	same "$D/old" "$MNT/images/x"
	same "$D/old" "$MNT/runtime/images/x"
	remount_dsfs
	same "$D/old" "$MNT/images/x"
	[ "$(xattr "$MNT/images/x" user.dsfs.type)" = image/png ]
}

@test "an image still incomplete at close fails the close with EINVAL and keeps the old one" {
	mount_dsfs
	mkimg gif "$D/old" 1
	tmo cp "$D/old" "$MNT/images/x"
	# Half of the PNG signature: the close fails.
	run pyop write_steps "$MNT/images/x" $'\x89PNG'
	[ "$output" = "write=OK close=EINVAL" ] || fail "write_steps: $output"
	same "$D/old" "$MNT/images/x"
	# The same through os.close in a script of its own.
	run tmo "$PYTHON" -c '
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"\x89PNG")
try:
    os.close(fd)
except OSError as e:
    print("close", e.errno == errno.EINVAL and "EINVAL" or e.errno)
else:
    print("close OK")
' "$MNT/images/x"
	[ "$output" = "close EINVAL" ] || fail "os.close: $output"
	same "$D/old" "$MNT/images/x"
	# A BMP cut before its DIB header size (under 26 bytes).
	run pyop write_steps "$MNT/images/x" $'BM\x46'
	[ "$output" = "write=OK close=EINVAL" ] || fail "short BMP: $output"
	# JPEG with 2 bytes, GIF with "GIF8", WebP cut after "RIFF".
	run pyop write_steps "$MNT/images/x" $'\xff\xd8'
	[ "$output" = "write=OK close=EINVAL" ] || fail "short JPEG: $output"
	run pyop write_steps "$MNT/images/x" 'GIF8'
	[ "$output" = "write=OK close=EINVAL" ] || fail "short GIF: $output"
	run pyop write_steps "$MNT/images/x" 'RIFF'
	[ "$output" = "write=OK close=EINVAL" ] || fail "short WebP: $output"
	same "$D/old" "$MNT/images/x"
	[ "$(xattr "$MNT/images/x" user.dsfs.type)" = image/gif ]
	remount_dsfs
	same "$D/old" "$MNT/images/x"
	# The shortest complete signature is enough.
	run pyop write_steps "$MNT/images/j" $'\xff\xd8\xff'
	[ "$output" = "write=OK close=OK" ] || fail "3-byte JPEG: $output"
	[ "$(xattr "$MNT/images/j" user.dsfs.type)" = image/jpeg ]
}

@test "a 5 MiB image written in 64 KiB pieces round-trips byte for byte" {
	mount_dsfs
	mkimg png "$D/big" 5 $((5 * 1024 * 1024))
	[ "$(stat -c %s "$D/big")" -eq $((5 * 1024 * 1024)) ]
	run tmo dd if="$D/big" of="$MNT/images/big" bs=64k
	[ "$status" -eq 0 ] || fail "dd: $output"
	same "$D/big" "$MNT/images/big"
	[ "$(stat -c %s "$MNT/images/big")" -eq $((5 * 1024 * 1024)) ]
	[ "$(xattr "$MNT/images/big" user.dsfs.token)" = "$(sha "$D/big")" ]
	same "$D/big" "$MNT/images/.by-token/$(sha "$D/big")"
	# Odd-sized pieces too.
	run tmo dd if="$D/big" of="$MNT/images/big2" bs=12345
	[ "$status" -eq 0 ] || fail "dd: $output"
	same "$D/big" "$MNT/images/big2"
	remount_dsfs
	same "$D/big" "$MNT/images/big"
	same "$D/big" "$MNT/images/big2"
}

# The reader of the replace tests: opens FILE, reads 64 KiB, has another
# process replace it with NEW (cp), with MODE=peek also reads the new image
# through a second open before going on, then reads the rest.  Prints ok,
# or what it got instead: which 64 KiB blocks came from the old image (o),
# the new one (n) or neither (?).
DSFS_REPLACE_READER='
import subprocess, sys
path, old, new, mode = sys.argv[1:5]
old_b = open(old, "rb").read()
new_b = open(new, "rb").read()
now = None
with open(path, "rb", buffering=0) as f:
    head = f.read(65536)
    subprocess.run(["cp", new, path], check=True, timeout=60)
    if mode == "peek":
        with open(path, "rb") as g:
            now = g.read()
    rest = b""
    while True:
        b = f.read(65536)
        if not b:
            break
        rest += b
got = head + rest
if got != old_b:
    blocks = "".join("o" if got[i:i + 65536] == old_b[i:i + 65536] else
                     "n" if got[i:i + 65536] == new_b[i:i + 65536] else "?"
                     for i in range(0, max(len(got), len(old_b)), 65536))
    print("the old reader got %d bytes, not the old image: %s" % (len(got), blocks))
    sys.exit(1)
if now is not None and now != new_b:
    print("a second open after the replace read %d bytes, not the new image" % len(now))
    sys.exit(1)
with open(path, "rb") as g:
    if g.read() != new_b:
        print("an open after the old reader closed does not read the new image")
        sys.exit(1)
print("ok")
'

@test "a reader that opened an image before it was replaced reads the whole old image" {
	mount_dsfs -o runtime_size=64M
	local n=$((4 * 1024 * 1024))
	mkimg png "$D/old" 1 $n
	mkimg png "$D/new" 2 $n
	tmo cp "$D/old" "$MNT/images/pic"
	# Read it once so the kernel has it cached, like a real reader would.
	same "$D/old" "$MNT/images/pic"
	run tmo "$PYTHON" -c "$DSFS_REPLACE_READER" "$MNT/images/pic" "$D/old" "$D/new" plain
	[ "$status" -eq 0 ] && [ "$output" = ok ] || fail "$output"
	same "$D/new" "$MNT/images/pic"
	[ "$(xattr "$MNT/images/pic" user.dsfs.token)" = "$(sha "$D/new")" ]
}

@test "an old reader keeps reading the old image while a new reader reads the new one" {
	mount_dsfs -o runtime_size=64M
	local n=$((4 * 1024 * 1024))
	mkimg png "$D/old" 1 $n
	mkimg png "$D/new" 2 $n
	tmo cp "$D/old" "$MNT/images/pic"
	run tmo "$PYTHON" -c "$DSFS_REPLACE_READER" "$MNT/images/pic" "$D/old" "$D/new" peek
	[ "$status" -eq 0 ] && [ "$output" = ok ] || fail "$output"
	same "$D/new" "$MNT/images/pic"
}

@test "an image copied to ephemeral/images lives in memory only and wins in images/" {
	mount_dsfs
	mkimg jpeg "$D/big.jpg" 1 $((300 * 1024))
	mkimg png "$D/rt.png" 2
	tmo cp "$D/rt.png" "$MNT/images/cache1"
	tmo cp "$D/big.jpg" "$MNT/ephemeral/images/cache1"
	same "$D/big.jpg" "$MNT/images/cache1"
	same "$D/big.jpg" "$MNT/ephemeral/images/cache1"
	same "$D/rt.png" "$MNT/runtime/images/cache1"
	[ "$(xattr "$MNT/images/cache1" user.dsfs.layer)" = ephemeral ]
	[ "$(xattr "$MNT/images/cache1" user.dsfs.type)" = image/jpeg ]
	tmo cp "$D/big.jpg" "$MNT/ephemeral/images/cache2"
	[ "$(ls1 "$MNT/images")" = "$(printf '%s\n' cache1 cache2)" ]
	[ "$(ls1 "$MNT/runtime/images")" = cache1 ]
	# Writing through images/ changes it where it was found: ephemeral.
	mkimg jpeg "$D/other.jpg" 3
	tmo cp "$D/other.jpg" "$MNT/images/cache2"
	same "$D/other.jpg" "$MNT/ephemeral/images/cache2"
	[ ! -e "$MNT/runtime/images/cache2" ]
	remount_dsfs
	[ -z "$(ls1 "$MNT/ephemeral/images")" ]
	[ "$(ls1 "$MNT/images")" = cache1 ]
	same "$D/rt.png" "$MNT/images/cache1"
	[ "$(xattr "$MNT/images/cache1" user.dsfs.layer)" = runtime ]
	assert_errno stat "$MNT/images/cache2" ENOENT
	assert_errno stat "$MNT/images/.by-token/$(sha "$D/big.jpg")" ENOENT
}

@test "an image bigger than the runtime budget fails with ENOSPC and changes nothing" {
	mount_dsfs -o runtime_size=1M
	mkimg png "$D/small" 1
	mkimg png "$D/huge" 2 $((2 * 1024 * 1024))
	tmo cp "$D/small" "$MNT/images/x"
	run tmo cp "$D/huge" "$MNT/images/x"
	[ "$status" -ne 0 ] && [[ $output == *"No space left on device"* ]] ||
		fail "cp 2 MiB image over images/x: $status '$output'"
	same "$D/small" "$MNT/images/x"
	run tmo dd if="$D/huge" of="$MNT/images/y" bs=64k
	[ "$status" -ne 0 ] && [[ $output == *"No space left on device"* ]] ||
		fail "dd 2 MiB image to images/y: $status '$output'"
	[ "$(ls1 "$MNT/runtime/images")" = x ] || [ "$(ls1 "$MNT/runtime/images")" = "$(printf '%s\n' x y)" ] ||
		fail "runtime/images lists: $(ls1 "$MNT/runtime/images")"
	# Whatever y is, it is not a part of the huge image.
	if [ -e "$MNT/images/y" ]; then
		[ "$(stat -c %s "$MNT/images/y")" -eq 0 ] ||
			fail "images/y has $(stat -c %s "$MNT/images/y") bytes after ENOSPC"
	fi
	# The budget is still usable: a small image fits.
	mkimg gif "$D/g" 3
	tmo cp "$D/g" "$MNT/images/g"
	same "$D/g" "$MNT/images/g"
	remount_dsfs -o runtime_size=1M
	same "$D/small" "$MNT/images/x"
	# The ephemeral layer has its own budget.
	remount_dsfs -o runtime_size=1M,ephemeral_size=1M
	run tmo cp "$D/huge" "$MNT/ephemeral/images/e"
	[ "$status" -ne 0 ] && [[ $output == *"No space left on device"* ]] ||
		fail "cp 2 MiB image to ephemeral/images: $status '$output'"
}

@test "a closed image survives kill -9 of the daemon" {
	mount_dsfs
	mkimg bmp "$D/a" 1
	mkimg webp "$D/b" 2
	mkimg png "$D/big" 3 $((1024 * 1024))
	tmo cp "$D/a" "$MNT/images/a"
	tmo cp "$D/b" "$MNT/images/a"
	tmo cp "$D/big" "$MNT/images/big"
	tmo cp "$D/a" "$MNT/ephemeral/images/eph"
	kill_daemon
	unmount_dsfs
	mount_dsfs
	same "$D/b" "$MNT/images/a"
	same "$D/big" "$MNT/images/big"
	[ "$(xattr "$MNT/images/a" user.dsfs.type)" = image/webp ]
	[ "$(xattr "$MNT/images/a" user.dsfs.token)" = "$(sha "$D/b")" ]
	same "$D/big" "$MNT/images/.by-token/$(sha "$D/big")"
	assert_errno stat "$MNT/images/eph" ENOENT
	[ "$(ls1 "$MNT/images")" = "$(printf '%s\n' a big)" ]
}

@test "factory images show in images/ and factory/images/; writes copy up; rm runtime/images/NAME reverts" {
	local F=$T/factory-src
	mkdir -p "$F/images/icons" "$F/kv"
	mkimg png "$F/images/logo" 1
	mkimg gif "$F/images/icons/spin" 2
	echo '"x"' >"$F/kv/k"
	make_factory "$F"
	mount_dsfs
	[ "$(ls1 "$MNT/images")" = "$(printf '%s\n' icons logo)" ] ||
		fail "images/ lists: $(ls1 "$MNT/images")"
	[ "$(ls1 "$MNT/factory/images")" = "$(printf '%s\n' icons logo)" ]
	[ -z "$(ls1 "$MNT/runtime/images")" ]
	same "$F/images/logo" "$MNT/images/logo"
	same "$F/images/logo" "$MNT/factory/images/logo"
	same "$F/images/icons/spin" "$MNT/images/icons/spin"
	[ "$(xattr "$MNT/images/logo" user.dsfs.layer)" = factory ]
	[ "$(xattr "$MNT/images/logo" user.dsfs.type)" = image/png ]
	[ "$(xattr "$MNT/images/icons/spin" user.dsfs.type)" = image/gif ]
	[ "$(xattr "$MNT/images/logo" user.dsfs.token)" = "$(sha "$F/images/logo")" ]
	same "$F/images/logo" "$MNT/images/.by-token/$(sha "$F/images/logo")"
	# factory/ is read-only.
	mkimg jpeg "$D/new" 3
	run tmo cp "$D/new" "$MNT/factory/images/logo"
	[ "$status" -ne 0 ] && [[ $output == *"Read-only file system"* ]] ||
		fail "cp to factory/images/logo: $status '$output'"
	# Writing through images/ copies up to runtime.
	tmo cp "$D/new" "$MNT/images/logo"
	same "$D/new" "$MNT/images/logo"
	same "$D/new" "$MNT/runtime/images/logo"
	same "$F/images/logo" "$MNT/factory/images/logo"
	[ "$(xattr "$MNT/images/logo" user.dsfs.layer)" = runtime ]
	[ "$(xattr "$MNT/images/logo" user.dsfs.type)" = image/jpeg ]
	[ "$(ls1 "$MNT/runtime/images")" = logo ]
	# Both blobs still open by token.
	same "$F/images/logo" "$MNT/images/.by-token/$(sha "$F/images/logo")"
	same "$D/new" "$MNT/images/.by-token/$(sha "$D/new")"
	# In a factory subdirectory too.
	tmo cp "$D/new" "$MNT/images/icons/spin"
	same "$D/new" "$MNT/runtime/images/icons/spin"
	same "$F/images/icons/spin" "$MNT/factory/images/icons/spin"
	remount_dsfs
	same "$D/new" "$MNT/images/logo"
	same "$D/new" "$MNT/images/icons/spin"
	# Revert to the factory image.
	rm "$MNT/runtime/images/logo"
	same "$F/images/logo" "$MNT/images/logo"
	[ "$(xattr "$MNT/images/logo" user.dsfs.layer)" = factory ]
	[ "$(xattr "$MNT/images/logo" user.dsfs.type)" = image/png ]
	rm "$MNT/runtime/images/icons/spin"
	same "$F/images/icons/spin" "$MNT/images/icons/spin"
	# Removing through images/ hides the factory image.
	rm "$MNT/images/logo"
	assert_errno stat "$MNT/images/logo" ENOENT
	same "$F/images/logo" "$MNT/factory/images/logo"
	remount_dsfs
	assert_errno stat "$MNT/images/logo" ENOENT
	[ "$(ls1 "$MNT/images")" = icons ]
}

@test "a refused image is logged with its path and the reason" {
	mount_dsfs_fg
	mkimg png "$D/old" 1
	tmo cp "$D/old" "$MNT/images/x"
	mkdir "$MNT/images/sub"
	run tmo bash -c "echo hello >'$MNT/images/x'"
	[ "$status" -ne 0 ]
	run pyop write_steps "$MNT/images/sub/y" $'\x89PNG'
	[ "$output" = "write=OK close=EINVAL" ] || fail "write_steps: $output"
	same "$D/old" "$MNT/images/x"
	sleep 0.2
	grep -q 'images/x:.*\(image\|PNG\)' "$T/log" ||
		fail "no log line names images/x and the reason: $(cat "$T/log")"
	grep -q 'images/sub/y:.*\(image\|short\|signature\)' "$T/log" ||
		fail "no log line names images/sub/y and the reason: $(cat "$T/log")"
}
