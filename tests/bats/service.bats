#!/usr/bin/env bats
# service.bats - what dsfsctl and dsfs give a shell and a service manager:
# usage() equal to the man page's SYNOPSIS, usage -h and --json, the bash
# completion, and the systemd unit template dsfs@.service, checked with
# systemd-analyze verify and run the way systemd runs it.

load helpers

TOP=$BATS_TEST_DIRNAME/../..

setup()
{
	setup_store
}

teardown()
{
	teardown_store
}

ctl()
{
	tmo "$DSFSCTL" "$@" 3>&- 4>&-
}

@test "dsfsctl -h is the man page's SYNOPSIS" {
	command -v man >/dev/null || fail "man is missing (apt-get install man-db)"
	synopsis=$(MANWIDTH=250 man -l "$TOP/man/dsfsctl.8" 2>/dev/null |
		sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' | sed '1d;$d' |
		sed 's/^ *//' | grep -v '^$' | tr -s ' ')
	usage=$("$DSFSCTL" -h | sed 's/^usage: //; s/^ *//' | tr -s ' ')
	[ -n "$synopsis" ]
	[ "$usage" = "$synopsis" ] || fail "usage():" "$usage" "SYNOPSIS:" "$synopsis"
}

@test "usage -h is df-like, --json is one JSON array, mounted or not" {
	run ctl usage -h "$STORE"
	[ "$status" -eq 1 ] # no store yet
	mount_dsfs
	head -c 3000 /dev/urandom | base64 -w0 | sed 's/.*/"&"/' >"$MNT/kv/big"
	run ctl usage -h "$STORE"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "layer        size   used  avail  use%" ]
	[[ "${lines[1]}" == "ephemeral    128M "* ]]
	[[ "${lines[2]}" == "runtime       13M   "*K*"13M    1%" ]]
	mounted=$(ctl usage --json "$STORE")
	echo "$mounted" | "$PYTHON" -c '
import json, sys
u = {x["layer"]: x for x in json.load(sys.stdin)}
assert set(u) == {"ephemeral", "runtime", "factory"}, u
r = u["runtime"]
assert r["budget"] == 13 * 1024 * 1024 and 4000 < r["used"] < 5000, r
assert r["available"] == r["budget"] - r["used"], r'
	unmount_dsfs
	[ "$(ctl usage --json "$STORE")" = "$mounted" ]
	run ctl usage -h --json "$STORE"
	[ "$status" -eq 2 ]
}

# complete WORDS...: what the bash completion offers for the last word.
complete_words()
{
	bash -c '
		source "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		_dsfsctl
		printf "%s\n" "${COMPREPLY[@]}" | sort' _ "$TOP/contrib/dsfsctl.bash" "$@"
}

@test "bash completion: commands, options, layers, stores" {
	[ "$(complete_words dsfsctl d)" = $'diff\ndump' ]
	[ "$(complete_words dsfsctl dump --l)" = --layer ]
	[ "$(complete_words dsfsctl dump --layer r)" = runtime ]
	[ "$(complete_words dsfsctl factory-reset --)" = $'--dry-run\n--keep\n--prefix' ]
	[ "$(complete_words dsfsctl load --)" = $'--archive\n--no-progress\n--progress\n--replace' ]
	[ "$(complete_words dsfsctl check --)" = $'--no-progress\n--progress' ]
	mkdir "$T/stores"
	[ "$(cd "$T" && complete_words dsfsctl check sto)" = stores ]
	[ "$(complete_words dsfsctl u)" = $'update\nusage' ]
	[ "$(cd "$T" && complete_words dsfsctl set sto)" = stores ]
	[ -z "$(cd "$T" && complete_words dsfsctl set stores s)" ]
	grep -q 'contrib/dsfsctl' "$TOP/Makefile.am"
}

# The unit as make install writes it, with this build's dsfs.
unit()
{
	sed -e "s|@bindir@|$(cd "$(dirname "$DSFS")" && pwd)|" \
		-e "s|@FUSERMOUNT@|$(command -v fusermount3)|" \
		-e 's|@MKDIR@|/bin/mkdir|' \
		"$TOP/contrib/dsfs@.service.in" >"$T/dsfs@demo.service"
}

@test "dsfs@.service passes systemd-analyze verify" {
	command -v systemd-analyze >/dev/null ||
		fail "systemd-analyze is missing (apt-get install systemd)"
	unit
	# The man pages it names are installed by make install, not here.
	run systemd-analyze verify --man=no "$T/dsfs@demo.service"
	echo "$output"
	[ "$status" -eq 0 ]
	# A broken unit is caught: the check can fail.
	sed -i 's|^ExecStart=/|ExecStart=|' "$T/dsfs@demo.service"
	run systemd-analyze verify --man=no "$T/dsfs@demo.service"
	[ "$status" -ne 0 ]
}

@test "dsfs@.service's commands mount and unmount a store" {
	unit
	printf 'STORE=%s\nMOUNTPOINT=%s\nDSFS_OPTIONS="-o runtime_size=1M"\n' \
		"$STORE" "$MNT/sub" >"$T/demo.conf"
	rmdir "$MNT" && mkdir "$MNT"
	MNT=$MNT/sub
	# As systemd runs them: the EnvironmentFile, then each Exec line
	# with ${VAR} and $VAR expanded (word-split for $VAR).
	run_exec()
	{
		local line
		line=$(sed -n "s/^$1=//p" "$T/dsfs@demo.service")
		(set -a && . "$T/demo.conf" && eval "tmo $line" </dev/null 3>&- 4>&-)
	}
	run_exec ExecStartPre
	run_exec ExecStart
	mountpoint -q "$MNT"
	[ "$(ctl usage --json "$STORE" | "$PYTHON" -c 'import json,sys; print([x["budget"] for x in json.load(sys.stdin) if x["layer"] == "runtime"][0])')" = 1048576 ]
	run_exec ExecStop
	wait_daemon_gone 10
	! mountpoint -q "$MNT"
}
