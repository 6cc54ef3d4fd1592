#!/usr/bin/env bats
# scripts.bats - what a shell script is told when dsfs refuses a value
# (issue 15): a full budget, invalid JSON and a non-image fail the write
# itself, so a builtin echo sees them; content still incomplete at close
# is seen only by programs that check close(2), and is readable from
# user.dsfs.error; dsfsctl get, set and update store one value and say
# why not, mounted and unmounted; writers racing for the last bytes of a
# budget are refused at a write or at close, never silently.

load helpers

setup()
{
	setup_store
}

teardown()
{
	# A store on a tmpfs of its own: unmount dsfs, then the tmpfs, then
	# remove the rest.
	if [ -n "${DISK:-}" ]; then
		unmount_dsfs
		! is_mounted "$DISK" || umount "$DISK"
	fi
	teardown_store
}

ctl()
{
	tmo "$DSFSCTL" "$@" 3>&- 4>&-
}

as_nobody()
{
	tmo setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$@" 3>&- 4>&-
}

# A 1x1 PNG.
PNG='\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\1\0\0\0\1\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\0\x05\x18\xd8N\0\0\0\0IEND\xaeB`\x82'

# runtime_used: the runtime layer's usage in bytes, as dsfsctl reports it.
runtime_used()
{
	ctl usage "$STORE" | awk '$1 == "runtime" { print $2 }'
}

# ------------------------------------------------- the issue's two commands

@test "runtime_size=8K: the echo whose value would exceed the budget fails with ENOSPC, exit status 1" {
	mount_dsfs -o runtime_size=8K
	local value i used=0 expect=0 first=0 v=503
	value="\"$(printf 'x%.0s' $(seq 500))\""
	# DESIGN.md's rule: usage is every entry's name plus its value.  A
	# new entry's name is stored when it is created, even if its value
	# is then refused.
	[ $((${#value} + 1)) -eq $v ]
	for i in $(seq 20); do
		if [ "$expect" -eq 0 ] &&
			[ $((used + ${#i} + 1 + v)) -gt 8192 ]; then
			expect=$i
		fi
		[ "$expect" -ne 0 ] && used=$((used + ${#i} + 1)) ||
			used=$((used + ${#i} + 1 + v))
	done
	[ "$expect" -eq 17 ]
	cd "$MNT"
	for i in $(seq 20); do
		echo "$value" >kv/k$i 2>>"$T/err" ||
			{ [ "$first" -ne 0 ] || first=$i; }
	done
	cd /
	[ "$first" -eq "$expect" ] || fail "first failure at $first, not $expect"
	grep -q 'echo: write error: No space left on device' "$T/err" ||
		fail "$(cat "$T/err")"
	[ "$(grep -c 'write error' "$T/err")" -eq $((20 - expect + 1)) ]
	run bash -c 'echo "$1" >"$2"' _ "$value" "$MNT/kv/k$expect"
	[ "$status" -eq 1 ]
	[[ "$output" == *"write error: No space left on device"* ]]
	for i in $(seq $((expect - 1))); do
		assert_content "$MNT/kv/k$i" "$value"$'\n'
	done
	for i in $(seq "$expect" 20); do
		[ ! -s "$MNT/kv/k$i" ]
	done
	[ "$(runtime_used)" -eq "$used" ]
	run xattr "$MNT/kv/k$expect" user.dsfs.error
	[[ "$output" == "ENOSPC: the runtime layer's budget of 8192 bytes is full"* ]] ||
		fail "$output"
}

@test "incomplete JSON through a builtin echo: exit 0, the value unchanged, the reason in user.dsfs.error" {
	mount_dsfs
	echo '{"a": 1}' >"$MNT/kv/x"
	run bash -c 'echo "{\"a\":" >"$1"; echo $?' _ "$MNT/kv/x"
	[ "$output" = 0 ]
	assert_content "$MNT/kv/x" $'{"a": 1}\n'
	run xattr "$MNT/kv/x" user.dsfs.error
	[ "$output" = "EINVAL: incomplete JSON at end of file (1 open), after byte 6" ] ||
		fail "$output"
	# The idioms of dsfs.8: a program that checks close, or dsfsctl.
	run bash -c 'printf "%s\n" "{\"a\":" | dd of="$1" status=none' _ "$MNT/kv/x"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Invalid argument"* ]]
	run ctl set "$STORE" kv/x '{"a":'
	[ "$status" -eq 1 ]
	[[ "$output" == *"kv/x: not stored: incomplete JSON at end of file (1 open), after byte 5" ]] ||
		fail "$output"
	assert_content "$MNT/kv/x" $'{"a": 1}\n'
	# A later commit forgets the reason.
	echo 2 >"$MNT/kv/x"
	run xattr "$MNT/kv/x" user.dsfs.error
	[ "$output" = ENODATA ]
}

# ------------------------------------------ every refusal, with every tool

# put TOOL DATAFILE PATH: writes the bytes of DATAFILE to PATH the way
# TOOL does, with its exit status; the tool's messages on stdout.
put()
{
	local tool=$1 data=$2 path=$3
	case $tool in
	bash) tmo bash -c 'v=$(cat "$1"); printf %s "$v" >"$2"' _ "$data" "$path" ;;
	dash) tmo dash -c 'v=$(cat "$1"); printf %s "$v" >"$2"' _ "$data" "$path" ;;
	echo) tmo bash -c '/bin/echo -n "$(cat "$1")" >"$2"' _ "$data" "$path" ;;
	dd) tmo bash -c 'cat "$1" | dd of="$2" status=none' _ "$data" "$path" ;;
	python3) tmo "$PYTHON" -c '
import sys
data = open(sys.argv[1], "rb").read()
f = open(sys.argv[2], "wb")
try:
    f.write(data)
    f.close()
except OSError as e:
    sys.exit("python3: " + e.strerror)' "$data" "$path" ;;
	esac 2>&1
}

TOOLS="bash dash echo dd python3"

# refused WHEN PATH FMT WHY: each tool writes printf FMT's bytes to PATH
# (whose value is OLD before); WHEN "write": every tool exits non-zero;
# "close": the shells' builtins exit 0 (their close error is lost) and
# the other tools non-zero.  Either way the value stays, and
# user.dsfs.error starts with WHY.
refused()
{
	local when=$1 path=$2 fmt=$3 why=$4 tool want old
	printf "$fmt" >"$T/data"
	cp "$path" "$T/old"
	for tool in $TOOLS; do
		run put "$tool" "$T/data" "$path"
		want=fail
		if [ "$when" = close ]; then
			case $tool in bash | dash) want=ok ;; esac
		fi
		if [ "$want" = ok ] && [ "$status" -ne 0 ]; then
			fail "$tool $path: exit $status: $output"
			return 1
		fi
		if [ "$want" = fail ] && [ "$status" -eq 0 ]; then
			fail "$tool $path: refusal not reported"
			return 1
		fi
		cmp "$T/old" "$path" || fail "$tool changed $path" || return 1
		run xattr "$path" user.dsfs.error
		[[ "$output" == "$why"* ]] ||
			fail "$tool $path: user.dsfs.error: $output" || return 1
	done
}

@test "every value refusal is told at write, or at close with user.dsfs.error, to bash, dash, /bin/echo, dd and python3" {
	mount_dsfs -o runtime_size=64K,ephemeral_size=64K
	echo '{"a": 1}' >"$MNT/kv/x"
	echo 1 >"$MNT/ephemeral/kv/e"
	printf "$PNG" >"$MNT/images/logo"
	refused write "$MNT/kv/x" '{oops' "EINVAL: unexpected"
	refused write "$MNT/kv/x" '{"a": 1}}' "EINVAL: "
	refused write "$MNT/images/logo" 'hello' \
		"EINVAL: not a PNG, JPEG, GIF, BMP or WebP image (byte 0); it starts with 68 65 6c 6c 6f"
	refused write "$MNT/kv/x" "\"$(head -c 70000 /dev/zero | tr '\0' x)\"" \
		"ENOSPC: the runtime layer's budget of 65536 bytes is full"
	refused write "$MNT/images/logo" "\x89PNG\r\n\x1a\n$(head -c 70000 /dev/zero | tr '\0' x)" \
		"ENOSPC: the runtime layer's budget of 65536 bytes is full"
	refused write "$MNT/ephemeral/kv/e" "\"$(head -c 70000 /dev/zero | tr '\0' x)\"" \
		"ENOSPC: the ephemeral layer's budget of 65536 bytes is full"
	refused close "$MNT/kv/x" '{"a": [1, 2' "EINVAL: incomplete JSON"
	refused close "$MNT/images/logo" '\x89PNG' \
		"EINVAL: image too short for its signature"
	assert_content "$MNT/kv/x" $'{"a": 1}\n'
}

@test "refusals of a name or a place are told by open(2) itself, to builtins too" {
	mount_dsfs
	local tool long
	long=$(printf 'n%.0s' $(seq 256))
	echo 1 >"$T/data"
	for tool in $TOOLS; do
		for path in "$MNT/factory/kv/x" "$MNT/kv/$long" \
			"$MNT/kv/$(printf 'bad\xff')" "$MNT/x"; do
			run put "$tool" "$T/data" "$path"
			[ "$status" -ne 0 ] || fail "$tool $path: not refused"
		done
	done
	run ln -s x "$MNT/kv/link"
	[ "$status" -ne 0 ]
	run mkfifo "$MNT/kv/fifo"
	[ "$status" -ne 0 ]
}

@test "user.dsfs.error: only for who could write the entry; at most 256 kept, the oldest forgotten" {
	mount_dsfs -o allow_other
	echo 1 >"$MNT/kv/x"
	chmod 0644 "$MNT/kv/x"
	run bash -c 'echo "{oops" >"$1"' _ "$MNT/kv/x"
	[ "$status" -eq 1 ]
	[[ "$(xattr "$MNT/kv/x" user.dsfs.error)" == "EINVAL: "* ]]
	run as_nobody "$PYTHON" -c 'import os, sys
try:
    os.getxattr(sys.argv[1], "user.dsfs.error")
    print("readable")
except OSError as e:
    print(e.errno)' "$MNT/kv/x"
	[ "$output" = 61 ] || fail "nobody: $output" # ENODATA
	chmod 0666 "$MNT/kv/x"
	run as_nobody "$PYTHON" -c 'import os, sys
print(os.getxattr(sys.argv[1], "user.dsfs.error").decode())' "$MNT/kv/x"
	[[ "$output" == "EINVAL: "* ]] || fail "nobody: $output"
	# 300 refusals: the first ones are forgotten, the last kept.
	for i in $(seq 300); do
		echo '{oops' >"$MNT/kv/e$i" 2>/dev/null || :
	done
	[ "$(xattr "$MNT/kv/e1" user.dsfs.error)" = ENODATA ]
	[ "$(xattr "$MNT/kv/x" user.dsfs.error)" = ENODATA ]
	[[ "$(xattr "$MNT/kv/e300" user.dsfs.error)" == "EINVAL: "* ]]
	[[ "$(xattr "$MNT/kv/e45" user.dsfs.error)" == "EINVAL: "* ]]
	run getfattr -d "$MNT/kv/e300"
	[[ "$output" == *"user.dsfs.error="* ]]
}

# ------------------------------------------------------------ budget races

@test "what one open writer holds, another cannot take; it is given back at close" {
	mount_dsfs -o runtime_size=16K
	run tmo "$PYTHON" -c '
import os, sys
mnt = sys.argv[1]
a = os.open(mnt + "/kv/a", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(a, b"\"" + b"x" * 9998)        # held, not yet committed
b = os.open(mnt + "/kv/b", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
try:
    os.write(b, b"\"" + b"y" * 7000)
    print("b: write OK")
except OSError as e:
    print("b: write " + os.strerror(e.errno))
try:
    os.close(b)
except OSError as e:
    print("b: close " + os.strerror(e.errno))
os.write(a, b"\"")
os.close(a)
print("a: stored")
# a stored 10000 bytes and b is an empty entry: 6000 more fit.
c = os.open(mnt + "/kv/c", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(c, b"\"" + b"z" * 5998 + b"\"")
os.close(c)
print("c: stored")
' "$MNT"
	[ "$status" -eq 0 ] || fail "$output"
	# Told at the write; the close has nothing to commit.
	[ "${lines[0]}" = "b: write No space left on device" ] || fail "$output"
	[ "${lines[1]}" = "a: stored" ] || fail "$output"
	[ "${lines[2]}" = "c: stored" ]
	[ "$(stat -c %s "$MNT/kv/a")" -eq 10000 ]
	[ ! -s "$MNT/kv/b" ]
	[ "$(runtime_used)" -le 16384 ]
}

@test "4 writers racing for the last bytes: each value whole or refused, the refused told, the budget kept" {
	mount_dsfs -o runtime_size=16K
	local w pids=()
	for w in 1 2 3 4; do
		tmo "$PYTHON" -c '
import os, sys, time
mnt, me = sys.argv[1], sys.argv[2]
fd = os.open("%s/kv/w%s" % (mnt, me), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
open("%s/ready.%s" % (os.environ["T"], me), "w").close()
while len([n for n in os.listdir(os.environ["T"]) if n.startswith("ready.")]) < 4:
    time.sleep(0.01)
value = b"\"" + me.encode() * 5998 + b"\""
told = "stored"
for i in range(0, len(value), 500):
    try:
        os.write(fd, value[i:i + 500])
    except OSError as e:
        told = "write " + os.strerror(e.errno)
        break
    time.sleep(0.005)
try:
    os.close(fd)
except OSError as e:
    if told == "stored":
        told = "close " + os.strerror(e.errno)
print(told)
' "$MNT" "$w" >"$T/told.$w" &
		pids+=($!)
	done
	wait "${pids[@]}"
	local stored=0 refused=0
	for w in 1 2 3 4; do
		case $(cat "$T/told.$w") in
		stored)
			stored=$((stored + 1))
			assert_content "$MNT/kv/w$w" "\"$(printf "$w%.0s" $(seq 5998))\""
			;;
		"write No space left on device" | "close No space left on device")
			refused=$((refused + 1))
			[ ! -s "$MNT/kv/w$w" ] || fail "w$w refused but not empty"
			;;
		*) fail "w$w: $(cat "$T/told.$w")" ;;
		esac
	done
	# 6002 bytes each (name and value): two fit in 16384, three do not;
	# as all four grow at once, the last bytes may go to one writer that
	# is then refused too.
	[ "$stored" -ge 1 ] && [ "$stored" -le 2 ] || fail "$stored stored"
	[ $((stored + refused)) -eq 4 ]
	[ "$(runtime_used)" -le 16384 ]
	[ "$(runtime_used)" -eq $((stored * 6000 + 4 * 2)) ]
	# Nothing is held any more: what is left fits.
	local room=$((16384 - stored * 6000 - 8 - 3))
	printf '"%s"' "$(head -c $((room - 2)) /dev/zero | tr '\0' z)" >"$MNT/kv/end"
	[ "$(runtime_used)" -eq 16384 ]
}

@test "the disk under the store: a write the disk could not hold fails with ENOSPC at once" {
	DISK=$STORE
	mkdir "$STORE"
	mount -t tmpfs -o size=6M tmpfs "$STORE"
	chmod 0700 "$STORE"
	mount_dsfs
	printf '"%s"' "$(head -c $((4 * 1024 * 1024)) /dev/zero | tr '\0' x)" >"$T/big"
	run tmo dd if="$T/big" of="$MNT/kv/big" bs=64K status=none
	[ "$status" -ne 0 ]
	[[ "$output" == *"No space left on device"* ]] || fail "$output"
	[ ! -s "$MNT/kv/big" ]
	run xattr "$MNT/kv/big" user.dsfs.error
	[[ "$output" == "ENOSPC: the storage under the runtime layer cannot take "*" more bytes of values in one commit"* ]] ||
		fail "$output"
	# What fits still goes in.
	printf '"%s"' "$(head -c 100000 /dev/zero | tr '\0' x)" >"$MNT/kv/small"
	[ "$(stat -c %s "$MNT/kv/small")" -eq 100002 ]
	unmount_dsfs
}

# ------------------------------------------------------ dsfsctl get/set/update

@test "dsfsctl set and get on an unmounted store: exit 1 with the reason on every refusal" {
	run ctl set "$STORE" kv/app/cfg '{"n": 1}'
	[ "$status" -eq 0 ] || fail "$output"
	[ "$(ctl get "$STORE" kv/app/cfg)" = '{"n": 1}' ]
	printf '"via stdin"' | ctl set "$STORE" devices/hub1/name -
	[ "$(ctl get "$STORE" kv/__hub1/name)" = '"via stdin"' ]
	printf "$PNG" | ctl set "$STORE" images/logo
	printf "$PNG" >"$T/png"
	ctl get "$STORE" images/logo >"$T/got"
	cmp "$T/png" "$T/got"
	run ctl set "$STORE" kv/app/cfg '{"n": 1,}'
	[ "$status" -eq 1 ]
	[[ "$output" == *"kv/app/cfg: not stored: unexpected '}' "*"at byte 8" ]] || fail "$output"
	run ctl set "$STORE" images/logo 'GIF87'
	[ "$status" -eq 1 ]
	[[ "$output" == *"image too short for its signature"* ]] || fail "$output"
	run ctl set "$STORE" images/logo 'hello'
	[ "$status" -eq 1 ]
	[[ "$output" == *"not a PNG, JPEG, GIF, BMP or WebP image (byte 0); it starts with 68 65 6c 6c 6f" ]] ||
		fail "$output"
	run ctl set "$STORE" factory/kv/x 1
	[ "$status" -eq 1 ]
	[[ "$output" == *"Read-only file system"* ]]
	head -c $((14 * 1024 * 1024)) /dev/zero | tr '\0' 1 >"$T/huge"
	run ctl set "$STORE" kv/huge - <"$T/huge"
	[ "$status" -eq 1 ]
	[[ "$output" == *"the runtime layer's budget of 13631488 bytes is full"* ]] ||
		fail "$output"
	run ctl get "$STORE" kv/missing
	[ "$status" -eq 1 ]
	[[ "$output" == *"kv/missing: No such file or directory" ]]
	[ "$(ctl get "$STORE" kv/app/cfg)" = '{"n": 1}' ]
	# What was set offline is what a mount shows.
	mount_dsfs
	assert_content "$MNT/kv/app/cfg" '{"n": 1}'
	cmp "$T/png" "$MNT/images/logo"
}

@test "dsfsctl set and get on a mounted store: the mount shows the new value at once" {
	mount_dsfs -o runtime_size=8K
	echo '"old"' >"$MNT/kv/x"
	[ "$(cat "$MNT/kv/x")" = '"old"' ]
	run ls "$MNT/kv/new"
	[ "$status" -ne 0 ]
	ctl set "$STORE" kv/x '"new"'
	ctl set "$STORE" kv/new 42
	[ "$(cat "$MNT/kv/x")" = '"new"' ]
	[ "$(cat "$MNT/kv/new")" = 42 ]
	[ "$(ctl get "$STORE" kv/x)" = '"new"' ]
	run ctl set "$STORE" kv/x '[1, 2'
	[ "$status" -eq 1 ]
	[[ "$output" == *"kv/x: not stored: incomplete JSON"* ]] || fail "$output"
	run ctl set "$STORE" kv/big "\"$(head -c 9000 /dev/zero | tr '\0' x)\""
	[ "$status" -eq 1 ]
	[[ "$output" == *"the runtime layer's budget of 8192 bytes is full"* ]] ||
		fail "$output"
	[ "$(cat "$MNT/kv/x")" = '"new"' ]
	run xattr "$MNT/kv/x" user.dsfs.error
	[[ "$output" == "EINVAL: incomplete JSON"* ]] || fail "$output"
	run ctl set "$STORE" factory/kv/x 1
	[ "$status" -eq 1 ]
	[[ "$output" == *"Read-only file system"* ]]
	ctl set "$STORE" ephemeral/kv/tmp 1
	[ "$(xattr "$MNT/kv/tmp" user.dsfs.layer)" = ephemeral ]
}

@test "dsfsctl set refuses a writer the entry's mode refuses (EACCES)" {
	# The store is nobody's, who may ask its daemon (run by root).
	mkdir -m 0700 "$STORE"
	chown nobody "$STORE"
	mount_dsfs
	echo 1 >"$MNT/kv/x"
	chmod 0644 "$MNT/kv/x"
	run as_nobody "$DSFSCTL" set "$STORE" kv/x 2
	[ "$status" -eq 1 ]
	[[ "$output" == *"kv/x: not stored: Permission denied" ]] || fail "$output"
	chmod 0666 "$MNT/kv/x"
	run as_nobody "$DSFSCTL" set "$STORE" kv/x 3
	[ "$status" -eq 0 ] || fail "$output"
	[ "$(cat "$MNT/kv/x")" = 3 ]
}

@test "dsfsctl update: 8 updates and 8 flock increments at once add exactly 16; a failed command changes nothing" {
	mount_dsfs
	local i pids=()
	echo 0 >"$MNT/kv/n"
	for i in $(seq 8); do
		ctl update "$STORE" kv/n -- sh -c 'echo $(( $(cat) + 1 ))' &
		pids+=($!)
		tmo flock "$MNT/kv/n" sh -c 'echo $(( $(cat "$1") + 1 )) >"$1"' _ "$MNT/kv/n" &
		pids+=($!)
	done
	wait "${pids[@]}"
	[ "$(cat "$MNT/kv/n")" = 16 ]
	run ctl update "$STORE" kv/n -- sh -c 'echo "{oops"'
	[ "$status" -eq 1 ]
	[[ "$output" == *"kv/n: not stored: "* ]] || fail "$output"
	run ctl update "$STORE" kv/n -- false
	[ "$status" -eq 1 ]
	[[ "$output" == *"false exited with status 1: the value is unchanged" ]]
	[ "$(cat "$MNT/kv/n")" = 16 ]
	run ctl update "$STORE" kv/none -- false
	[ "$status" -eq 1 ]
	[ ! -e "$MNT/kv/none" ]
	run ctl update "$STORE" kv/n
	[ "$status" -eq 2 ]
	# Unmounted, under STORE/lock.
	unmount_dsfs
	ctl update "$STORE" kv/n -- sh -c 'echo $(( $(cat) * 2 ))'
	[ "$(ctl get "$STORE" kv/n)" = 32 ]
	# A missing entry: the command reads nothing.
	ctl update "$STORE" kv/fresh -- sh -c 'echo $(( $(cat) + 1 ))'
	[ "$(ctl get "$STORE" kv/fresh)" = 1 ]
}
