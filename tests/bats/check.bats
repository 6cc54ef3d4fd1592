#!/usr/bin/env bats
# check.bats - dsfsctl check on a mounted store, on every runtime backend,
# while a writer loop writes through the mount: the same report as on an
# unmounted store, never a false problem, and real damage still found.
# The suite starts its own PostgreSQL server (tests/pg_server.sh).

load helpers

setup_file()
{
	pg_server_start
}

teardown_file()
{
	pg_server_stop
}

setup()
{
	setup_store
	S=$T/src
	mkdir -p "$S/kv/app"
	printf '"factory"\n' >"$S/kv/app/name"
	make_factory "$S"
}

teardown()
{
	local rc=0
	stop_writer || rc=1
	teardown_store
	return $rc
}

ctl()
{
	tmo "$DSFSCTL" "$@" 3>&- 4>&-
}

# start_writer: a loop that rewrites, creates and removes values under
# kv/w through the mount until $T/stop exists; its pid in $writer.  A file,
# not a signal, stops it: the loop ends between two of its commands (a
# mkdir -p left running would make kv/w again after the test removed it),
# and never by when a shell runs its trap.
start_writer()
{
	rm -f "$T/stop"
	mkdir -p "$MNT/kv/w"
	(
		i=0
		while [ ! -e "$T/stop" ]; do
			i=$((i + 1))
			echo "{\"i\": $i}" >"$MNT/kv/w/v$((i % 20))"
			if [ $((i % 7)) = 0 ]; then
				mkdir -p "$MNT/kv/w/d$((i % 5))"
				rm -f "$MNT/kv/w/v$(((i + 3) % 20))"
			fi
		done
	) 3>&- 4>&- &
	writer=$!
	# The loop is writing before the first check.
	until [ -e "$MNT/kv/w/v5" ]; do sleep 0.05; done
}

# stop_writer: stops the loop of start_writer and waits for it, 60 s at
# most.  A loop still there then waits for a request the daemon does not
# answer: the test fails, saying where the loop and the daemon wait,
# rather than hang until bats' own timeout.
stop_writer()
{
	local tries=600
	[ -n "${writer:-}" ] || return 0
	touch "$T/stop"
	while kill -0 "$writer" 2>/dev/null; do
		tries=$((tries - 1))
		if [ $tries -le 0 ]; then
			local report
			report=$(stuck_report "$writer")
			kill -9 "$writer" 2>/dev/null
			writer=
			fail "the writer loop did not stop within 60 s:" "$report"
			return 1
		fi
		sleep 0.1
	done
	wait "$writer" || true
	writer=
}

# checks_while_writing: five checks while the writer runs, each ok, with
# the lines an unmounted store's check has.
checks_while_writing()
{
	local n before
	before=$(cat "$MNT/kv/w/v1" 2>/dev/null || true)
	for n in 1 2 3 4 5; do
		run ctl check "$STORE"
		[ "$status" -eq 0 ] || fail "check $n: $output"
		[[ "$output" =~ runtime(\.db)?:\ [0-9]+\ directories,\ [0-9]+\ files,\ [0-9]+\ whiteouts,\ [0-9]+\ bytes\ used:\ ok ]] ||
			fail "check $n: $output"
		[[ "$output" == *"factory.db: 1 directories, 1 files, 0 whiteouts, "*" bytes used: ok"* ]] ||
			fail "check $n: $output"
	done
	# The writer was never stopped: it went on during the checks.
	[ "$(cat "$MNT/kv/w/v1" 2>/dev/null || true)" != "$before" ] ||
		[ "$(cat "$MNT/kv/w/v2" 2>/dev/null || true)" != "$before" ] ||
		fail "the writer made no progress"
	[ "$(ls "$STORE" | grep -c '^check\.\|^admin\.')" -eq 0 ] ||
		fail "left behind: $(ls "$STORE")"
}

@test "check of a mounted store with runtime=memory while a writer writes" {
	mount_dsfs -o runtime=memory
	start_writer
	checks_while_writing
	[[ "$output" == "runtime: kept in memory, walked by the daemon"* ]] ||
		fail "$output"
	stop_writer
	# With the writer stopped, the figures are the mount's own.
	echo '"abc"' >"$MNT/kv/app/extra"
	rm -r "$MNT/kv/w"
	run ctl check "$STORE"
	[ "$status" -eq 0 ] || fail "$output"
	# kv/app (3) + extra (5) + "abc"\n (6); kv/w was the runtime's own:
	# no whiteout.
	[[ "$output" == *"runtime: 1 directories, 1 files, 0 whiteouts, 14 bytes used: ok"* ]] ||
		fail "$output"
}

@test "check of a mounted store with runtime=postgresql while a writer writes" {
	uri=$(pg_new_database "c_${BATS_TEST_NUMBER}_$$")
	mount_dsfs -o "runtime=$uri"
	start_writer
	checks_while_writing
	[[ "$output" == "runtime: in PostgreSQL, "* ]] || fail "$output"
	stop_writer
	# The writer may have been stopped between removing v1 and writing
	# it again; the damage below needs it.
	echo '{"i": 0}' >"$MNT/kv/w/v1"
	# Mounted and unmounted, the same report.
	mounted=$(ctl check "$STORE")
	unmount_dsfs
	[ "$(ctl check "$STORE")" = "$mounted" ]
	# Damage in the database is found through the daemon's walk.
	mount_dsfs -o "runtime=$uri"
	damaged=$(PG_DB=c_${BATS_TEST_NUMBER}_$$ pg_sql \
		"UPDATE dsfs_entry SET value = convert_to('{\"i\": ', 'UTF8') WHERE name = convert_to('v1', 'UTF8') RETURNING 'damaged'")
	[ "$damaged" = damaged ] || fail "v1 was not damaged: $damaged"
	run ctl check "$STORE"
	[ "$status" -eq 1 ] || fail "$output"
	[[ "$output" == *"runtime: kv/w/v1: "* ]] || fail "$output"
	[[ "$output" == *"runtime: "*"bytes used: PROBLEMS"* ]] || fail "$output"
	[[ "$output" == *" problem"*" found"* ]] || fail "$output"
	PG_DB=c_${BATS_TEST_NUMBER}_$$ pg_sql \
		"UPDATE dsfs_state SET used = used + 5" >/dev/null
	run ctl check "$STORE"
	[ "$status" -eq 1 ] || fail "$output"
	[[ "$output" == *"runtime: usage: records"* ]] || fail "$output"
}

@test "check of a mounted store with the SQLite runtime while a writer writes" {
	mount_dsfs -o runtime=sqlite
	start_writer
	checks_while_writing
	[[ "$output" == *"runtime.db: "*"bytes used: ok"* ]] || fail "$output"
}
