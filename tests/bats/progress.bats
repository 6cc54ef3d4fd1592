#!/usr/bin/env bats
# progress.bats - dsfsctl's progress line for mkfactory, load and check of
# a big store: shown on a terminal (a real pty, from script(1)), one line
# rewritten with \r and cleared at the end; never when standard error is
# not a terminal; --progress and --no-progress force it either way.

load helpers

setup()
{
	setup_store
	command -v script >/dev/null ||
		fail "FATAL: script(1) (util-linux) is needed for a pty"
	# 10,000 values in 10,200 directories: enough work for several
	# updates (on_tty shows the first at once).
	python3 -c '
import json, sys
d = {"d%d" % i: {"k%d" % j: {"v": i * j} for j in range(50)} for i in range(200)}
json.dump(d, open(sys.argv[1], "w"))' "$T/big.json"
}

teardown()
{
	teardown_store
}

# on_tty CMD: run the shell command CMD with its standard streams on a
# new pty; what the terminal got is in $T/tty, the status in $status.
on_tty()
{
	status=0
	# From the start: however fast this machine reads and writes.
	DSFSCTL_PROGRESS_DELAY=0 tmo script -qec "$1" /dev/null >"$T/tty" 2>&1 </dev/null 3>&- 4>&- ||
		status=$?
}

# shows_progress WHAT: $T/tty holds progress lines of WHAT, rewritten with
# \r, the last one cleared with spaces.
shows_progress()
{
	grep -q $'\r'"$1: [0-9]* \(of [0-9]* \)\?entries, [0-9.]*[KMG]\?" "$T/tty" ||
		fail "no progress of '$1': $(tr '\r' '\n' <"$T/tty" | head -5)"
	# The last \r-separated piece before the command's own output is
	# only spaces: the line was cleared.
	tr '\r' '\n' <"$T/tty" | grep -q '^ \+$' ||
		fail "the progress line was not cleared: $(tr '\r' '\n' <"$T/tty" | tail -3)"
}

@test "load shows progress on a terminal, none when stderr is not one" {
	on_tty "'$DSFSCTL' load '$STORE' '$T/big.json'"
	[ "$status" -eq 0 ] || fail "$(cat "$T/tty")"
	shows_progress "load $T/big.json: reading"
	# stderr redirected: the same load prints nothing at all.
	on_tty "'$DSFSCTL' load --replace '$STORE' '$T/big.json' 2>'$T/err'"
	[ "$status" -eq 0 ]
	[ ! -s "$T/tty" ] || fail "on the terminal: $(od -c "$T/tty" | head)"
	[ ! -s "$T/err" ] || fail "on stderr: $(od -c "$T/err" | head)"
	# No terminal at all: nothing either.
	run tmo "$DSFSCTL" load --replace "$STORE" "$T/big.json"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	# --no-progress on a terminal: nothing; --progress to a file: shown.
	on_tty "'$DSFSCTL' load --no-progress --replace '$STORE' '$T/big.json'"
	[ "$status" -eq 0 ]
	[ ! -s "$T/tty" ] || fail "$(od -c "$T/tty" | head)"
	tmo "$DSFSCTL" load --replace --progress "$STORE" "$T/big.json" \
		2>"$T/forced"
	grep -q $'\r'"load $T/big.json: reading: [0-9]* entries" "$T/forced"
	# The values are there, progress or not.
	[ "$(tmo "$DSFSCTL" get "$STORE" kv/d199/k49/v)" = 9751 ]
}

@test "load --archive and check show progress on a terminal" {
	tmo "$DSFSCTL" load --no-progress "$STORE" "$T/big.json"
	tmo "$DSFSCTL" dump --archive "$STORE" >"$T/a"
	on_tty "'$DSFSCTL' load --archive '$T/new' '$T/a'"
	[ "$status" -eq 0 ] || fail "$(cat "$T/tty")"
	shows_progress "load --archive $T/a"
	on_tty "'$DSFSCTL' check '$T/new'"
	[ "$status" -eq 0 ] || fail "$(cat "$T/tty")"
	shows_progress "check runtime.db"
	# The report itself is unchanged, on lines of its own.
	tr '\r' '\n' <"$T/tty" | grep -q '^runtime.db: 10200 directories, 10000 files, 0 whiteouts, [0-9]* bytes used: ok' ||
		fail "$(tr '\r' '\n' <"$T/tty" | tail -4)"
	on_tty "'$DSFSCTL' check '$T/new' 2>/dev/null"
	[ "$status" -eq 0 ]
	# (The pty ends each line with \r\n: a \r before other text is
	# progress.)
	! grep -q $'\r.' "$T/tty" || fail "$(od -c "$T/tty" | head)"
	run tmo "$DSFSCTL" check "$T/new"
	[ "$status" -eq 0 ]
	[[ "$output" != *$'\r'* ]]
}

@test "mkfactory shows progress on a terminal" {
	mkdir -p "$T/src/kv"
	python3 -c '
import os, sys
for i in range(60):
    os.makedirs("%s/kv/d%d" % (sys.argv[1], i))
    for j in range(50):
        open("%s/kv/d%d/k%d" % (sys.argv[1], i, j), "w").write("{\"v\": %d}\n" % j)' "$T/src"
	on_tty "'$DSFSCTL' mkfactory '$T/src' '$T/img'"
	[ "$status" -eq 0 ] || fail "$(cat "$T/tty")"
	shows_progress "mkfactory"
	run tmo "$DSFSCTL" mkfactory "$T/src" "$T/img2"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ -s "$T/img" ] && [ -s "$T/img2" ]
}
