#!/usr/bin/env bats
# pg.bats - the runtime layer on PostgreSQL: the test server itself, and
# what only a shared database has (schema versions, outages, the password
# of a URI, one budget for several hosts).  The whole behaviour of kv/,
# images/, devices/ and the overlay on this runtime is the other suites run
# again through tests/bats/on-postgresql.

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
}

teardown()
{
	# A test that failed before its end leaves the server paused, or its
	# second host mounted.
	pg_resume
	teardown_host2
	teardown_store
}

@test "the test server answers on its Unix socket only, as postgres" {
	[ -S "$PG_DIR/.s.PGSQL.5432" ]
	[ "$(pg_sql 'SHOW listen_addresses')" = "" ]
	[ "$(pg_sql 'SELECT current_user')" = postgres ]
	[ "$(stat -c %U "$PG_DIR/pgdata")" = postgres ]
}

# A second host: another STORE and mount point on the same database.
setup_host2()
{
	STORE2=$T/store2
	MNT2=$T/mnt2
	mkdir "$MNT2"
}

teardown_host2()
{
	[ -n "${MNT2:-}" ] || return 0
	STORE=$STORE2 MNT=$MNT2 unmount_dsfs || true
}

# pg_pause, pg_resume: every process of the server stopped (SIGSTOP) and
# continued, so that a request waits for its answer.
pg_pause()
{
	PG_PAUSED=$(head -1 "$PG_DIR/pgdata/postmaster.pid")
	kill -STOP "$PG_PAUSED" && pkill -STOP -P "$PG_PAUSED"
}

pg_resume()
{
	[ -n "${PG_PAUSED:-}" ] || return 0
	pkill -CONT -P "$PG_PAUSED"
	kill -CONT "$PG_PAUSED"
	PG_PAUSED=
}

# A database of this test's own.
fresh_db()
{
	PG_DB=t_${BATS_TEST_NUMBER}_$$
	URI=$(pg_new_database "$PG_DB") || return 1
	export PG_DB
}

@test "runtime=memory: a throwaway runtime layer, nothing kept on disk or after unmount" {
	mount_dsfs -o runtime=memory
	echo '{"a":1}' >"$MNT/kv/x"
	mkdir "$MNT/kv/d"
	assert_content "$MNT/runtime/kv/x" '{"a":1}
'
	[ ! -e "$STORE/runtime.db" ]
	[ "$(cat "$STORE/runtime.uri")" = memory ]
	run tmo "$DSFSCTL" usage "$STORE"
	[ "$status" -eq 0 ]
	[[ "$output" == *"runtime 10 "* ]] # x: 1 + 8, d: 1
	remount_dsfs -o runtime=memory
	[ -z "$(ls -A "$MNT/kv")" ]
	unmount_dsfs
	run tmo "$DSFSCTL" usage "$STORE"
	[ "$status" -eq 0 ]
	[[ "$output" == *"runtime 0 "* ]]
	mount_dsfs -o runtime=sqlite
	[ -f "$STORE/runtime.db" ]
	[ ! -e "$STORE/runtime.uri" ]
}

@test "runtime=memory: dsfsctl load and a limited factory-reset change the mounted memory runtime in one change set" {
	mount_dsfs -o runtime=memory
	mkdir "$MNT/kv/m"
	echo '"old"' >"$MNT/kv/m/a"
	echo '"kept"' >"$MNT/kv/m/keep"
	printf '{"m": {"b": {"c": [1, 2]}}}' | tmo "$DSFSCTL" load "$STORE" -
	assert_content "$MNT/kv/m/b/c" '[1, 2]'
	assert_content "$MNT/kv/m/a" '"old"
'
	[ "$(getfattr --only-values -n user.dsfs.layer "$MNT/kv/m/b/c")" = runtime ]
	# A document that cannot be loaded whole changes nothing.
	run tmo "$DSFSCTL" load "$STORE" - <<<'{"m": {"a": {"x": 1}, "z": 1'
	[ "$status" -ne 0 ]
	assert_content "$MNT/kv/m/a" '"old"
'
	[ ! -e "$MNT/kv/m/z" ]
	tmo "$DSFSCTL" factory-reset --prefix m --keep m/keep "$STORE"
	[ ! -e "$MNT/kv/m/a" ]
	[ ! -e "$MNT/kv/m/b" ]
	assert_content "$MNT/kv/m/keep" '"kept"
'
}

@test "runtime=postgresql: values, directories and images live in the database, across remounts" {
	fresh_db
	mount_dsfs -o "runtime=$URI"
	echo '{"url":"https://x"}' >"$MNT/kv/cfg"
	mkdir -p "$MNT/kv/app"
	echo 42 >"$MNT/kv/app/n"
	printf 'GIF89a\001\000\001\000\000\000\000;' >"$MNT/images/dot"
	[ ! -e "$STORE/runtime.db" ]
	[ "$(pg_sql "SELECT count(*) FROM dsfs_entry")" = 4 ]
	[ "$(pg_sql "SELECT count(*) FROM dsfs_blob")" = 1 ]
	remount_dsfs -o "runtime=$URI"
	assert_content "$MNT/kv/cfg" '{"url":"https://x"}
'
	assert_content "$MNT/kv/app/n" '42
'
	[ "$(xattr "$MNT/images/dot" user.dsfs.type)" = image/gif ]
	[ "$(pg_sql "SELECT v FROM dsfs_meta WHERE k = 'schema_version'")" = 1 ]
}

@test "runtime=postgresql: every walk asks for the names again, but not for the attributes it was just sent" {
	fresh_db
	mount_dsfs_fg -d -o "runtime=$URI"
	mkdir -p "$MNT/kv/d"
	local from lookups getattrs i kv
	kv=$(stat -c %i "$MNT/kv")
	from=$(($(wc -l <"$T/log") + 1))
	for i in $(seq 20); do
		echo "{\"i\": $i}" >"$MNT/kv/d/f$i"
	done
	lookups=$(tail -n "+$from" "$T/log" | grep -c 'opcode: LOOKUP')
	# kv's own are left out: asked again when more than 10 ms passed
	# since the last walk, as on a slow machine.
	getattrs=$(tail -n "+$from" "$T/log" | grep 'opcode: GETATTR' |
		grep -vc "nodeid: $kv," || true)
	# Each new name is looked up (a name missed is never cached).
	[ "$lookups" -ge 20 ] || fail "$lookups lookups"
	# Kept for 10 ms, the attributes of d and of the new file are not
	# asked again by the permission checks of the same open: 2 or 3
	# GETATTRs a create when they were not.  A loaded machine may let
	# 10 ms pass inside an open now and then.
	[ "$getattrs" -lt 10 ] || fail "$getattrs getattrs for 20 creates"
	assert_content "$MNT/kv/d/f20" '{"i": 20}
'
}

@test "runtime=postgresql: an unlink asks the server nothing before it removes the file but the kernel's lookups" {
	fresh_db
	# Sessions of this database log every statement they run.
	pg_sql "ALTER DATABASE $PG_DB SET log_statement = 'all'"
	mount_dsfs -o "runtime=$URI"
	mkdir -p "$MNT/kv/d"
	local from gets i
	for i in $(seq 20); do
		echo "{\"i\": $i}" >"$MNT/kv/d/g$i"
	done
	from=$(($(wc -l <"$PG_DIR/server.log") + 1))
	for i in $(seq 20); do
		rm "$MNT/kv/d/g$i"
	done
	# The lookups of an entry whose name starts with "g" (hex 67): the
	# statement's line, then its parameters'.
	gets=$(tail -n "+$from" "$PG_DIR/server.log" | awk '
		/execute [^:]*: SELECT (true, )?kind, opaque, mode/ { get = 1; next }
		get && /DETAIL: +parameters: .*\$2 = .\\x67/ { n++ }
		{ get = 0 }
		END { print n + 0 }')
	# The kernel looks each name up for rm's lstat and again before its
	# UNLINK (names are not cached); the unlink itself asks nothing more.
	# It was 3 a file when the overlay looked the file up first.
	[ "$gets" -ge 20 ] || fail "$gets lookups counted: is the log read right?"
	[ "$gets" -le 44 ] || fail "$gets lookups for 20 unlinks"
	[ "$(ls "$MNT/kv/d")" = "" ]
	[ "$(pg_sql "SELECT count(*) FROM dsfs_entry WHERE name = 'g1'::bytea")" = 0 ]
	# A directory is still refused, and stays.
	mkdir "$MNT/kv/d/sub"
	run rm "$MNT/kv/d/sub"
	[ "$status" -ne 0 ]
	[ -d "$MNT/kv/d/sub" ]
}

@test "libpq and its libraries are loaded by a daemon only when its runtime is in PostgreSQL" {
	local pid
	mount_dsfs
	pid=$(daemon_pids)
	[ -n "$pid" ]
	! grep -E 'libpq|libcrypto|libgnutls' "/proc/$pid/maps"
	unmount_dsfs
	mount_dsfs -o runtime=memory
	pid=$(daemon_pids)
	! grep -q libpq "/proc/$pid/maps"
	unmount_dsfs
	fresh_db
	mount_dsfs -o "runtime=$URI"
	pid=$(daemon_pids)
	grep -q 'libpq\.so\.5' "/proc/$pid/maps"
}

@test "without a loadable libpq.so.5 a PostgreSQL runtime is refused with a line naming it, and SQLite still mounts" {
	local lib
	lib=$(ldconfig -p | awk '/libpq\.so\.5 / { print $NF; exit }')
	[ -n "$lib" ] || fail "FATAL: ldconfig does not know libpq.so.5"
	fresh_db
	# In a mount namespace of its own, the library is an empty file.
	run tmo unshare -m sh -c 'mount --bind /dev/null "$1" && shift &&
		"$@" && fusermount3 -u "$5"' sh "$lib" "$DSFS" -o "runtime=$URI" "$STORE" "$MNT"
	[ "$status" -ne 0 ]
	[[ "$output" == *"PostgreSQL's client library cannot be loaded"*libpq.so.5* ]] || fail "$output"
	! is_mounted "$MNT"
	run tmo unshare -m sh -c 'mount --bind /dev/null "$1" && shift &&
		"$@" && fusermount3 -u "$3"' sh "$lib" "$DSFS" "$STORE" "$MNT"
	[ "$status" -eq 0 ] || fail "$output"
}

@test "a runtime that is none of sqlite, memory or a conninfo is refused, its text not echoed" {
	run tmo "$DSFS" -o runtime=mysql:secretword "$STORE" "$MNT"
	[ "$status" -ne 0 ]
	[[ "$output" == *"not sqlite, memory"* ]]
	[[ "$output" != *secretword* ]]
	! is_mounted "$MNT"
}

@test "a schema newer than the daemon knows is refused with a clear message" {
	fresh_db
	mount_dsfs -o "runtime=$URI"
	echo 1 >"$MNT/kv/a"
	unmount_dsfs
	pg_sql "UPDATE dsfs_meta SET v = 99 WHERE k = 'schema_version'"
	run tmo "$DSFS" -o "runtime=$URI" "$STORE" "$MNT"
	[ "$status" -ne 0 ]
	[[ "$output" == *"schema is version 99, newer than this dsfs knows (1)"* ]]
	! is_mounted "$MNT"
	[ "$(pg_sql "SELECT count(*) FROM dsfs_entry")" = 1 ]
}

@test "the password of the URI is not in ps, the log, error messages or STORE" {
	local pw=Sekr1tPw9 pid
	pg_sql "CREATE ROLE pwuser LOGIN PASSWORD '$pw'"
	PG_DB=postgres pg_sql "CREATE DATABASE pwdb OWNER pwuser"
	# scram for this role, trust for the tests' own superuser.
	sed -i "1i local all pwuser scram-sha-256" "$PG_DIR/pgdata/pg_hba.conf"
	pg_sql "SELECT pg_reload_conf()" >/dev/null
	sleep 0.3
	local uri="postgresql://pwuser:$pw@/pwdb?host=$PG_DIR"
	mount_dsfs_fg -o "runtime=$uri"
	echo '"v"' >"$MNT/kv/k"
	pid=$(daemon_pids)
	[ -n "$pid" ]
	! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$pw"
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'pwuser:\*\*\*\*\*\*\*\*\*@'
	! ps -eo args | grep -v grep | grep -q "$pw"
	! grep -rq "$pw" "$STORE"
	grep -q "user='pwuser'" "$STORE/runtime.uri"
	unmount_dsfs
	# Unmounted, dsfsctl needs the password from libpq's password file.
	export PGPASSFILE=/nonexistent
	run tmo "$DSFSCTL" usage "$STORE"
	[ "$status" -ne 0 ]
	[[ "$output" != *"$pw"* ]]
	echo "*:*:pwdb:pwuser:$pw" >"$T/pgpass"
	chmod 0600 "$T/pgpass"
	export PGPASSFILE=$T/pgpass
	run tmo "$DSFSCTL" usage "$STORE"
	[ "$status" -eq 0 ]
	[[ "$output" == *"runtime 5 "* ]] # k: 1 + 4
	# A wrong password: refused, and neither password is in the message.
	run tmo "$DSFS" -o "runtime=postgresql://pwuser:Wr0ngPw7@/pwdb?host=$PG_DIR" "$STORE" "$MNT"
	[ "$status" -ne 0 ]
	[[ "$output" == *"password authentication failed"* ]]
	[[ "$output" != *Wr0ngPw7* ]]
	! grep -q "$pw" "$T/log"
}

@test "dsfsctl usage and factory-reset on a PostgreSQL runtime, mounted and not" {
	fresh_db
	mount_dsfs -o "runtime=$URI"
	echo '"abc"' >"$MNT/kv/k"
	run tmo "$DSFSCTL" usage "$STORE"
	[ "$status" -eq 0 ]
	[[ "$output" == *"runtime 7 "* ]]
	run tmo "$DSFSCTL" factory-reset "$STORE"
	[ "$status" -eq 0 ]
	[ ! -e "$MNT/kv/k" ]
	echo '"abc"' >"$MNT/kv/k2"
	mkdir "$MNT/kv/d"
	unmount_dsfs
	run tmo "$DSFSCTL" usage "$STORE"
	[ "$status" -eq 0 ]
	[[ "$output" == *"runtime 9 "* ]] || fail "$output"
	# check walks the database's runtime layer: every value, the usage.
	run tmo "$DSFSCTL" check "$STORE"
	[ "$status" -eq 0 ] || fail "$output"
	[[ "$output" == *"runtime: in PostgreSQL, "* ]] || fail "$output"
	[[ "$output" == *"runtime: 1 directories, 1 files, 0 whiteouts, 9 bytes used: ok"* ]] ||
		fail "$output"
	[[ "$output" != *absent\ \(the\ store\ was\ never* ]] || fail "$output"
	run tmo "$DSFSCTL" factory-reset "$STORE"
	[ "$status" -eq 0 ]
	[ "$(pg_sql "SELECT count(*) FROM dsfs_entry")" = 0 ]
	run tmo "$DSFSCTL" usage "$STORE"
	[[ "$output" == *"runtime 0 "* ]]
}

@test "two hosts on one database: one budget, never overshot by writers at once" {
	fresh_db
	setup_host2
	mount_dsfs -o "runtime=$URI,runtime_size=4K"
	STORE=$STORE2 MNT=$MNT2 mount_dsfs -o "runtime=$URI,runtime_size=4K"
	# Each value costs its name (5: mnt10, 6: mnt210) + 99 bytes.
	local v i m pids=()
	v=\"$(head -c 97 /dev/zero | tr '\0' x)\"
	for m in "$MNT" "$MNT2"; do
		(
			for i in $(seq 10 59); do
				pyop write "$m/kv/${m##*/}$i" "$v"
			done >"$T/${m##*/}.out"
		) &
		pids+=($!)
	done
	wait "${pids[@]}"
	local ok enospc used
	ok=$(cat "$T/mnt.out" "$T/mnt2.out" | grep -c '^OK$')
	enospc=$(cat "$T/mnt.out" "$T/mnt2.out" | grep -c '^ENOSPC$')
	[ $((ok + enospc)) -eq 100 ]
	[ "$enospc" -gt 0 ]
	used=$(pg_sql "SELECT used FROM dsfs_state")
	[ "$used" -le 4096 ]
	# Usage is exactly what is stored (a create whose value did not fit
	# left its empty file), and every acknowledged value is there.
	[ "$used" -eq "$(pg_sql "SELECT sum(length(name) + size) FROM dsfs_entry")" ]
	[ "$(pg_sql "SELECT count(*) FROM dsfs_entry WHERE size = 99")" -eq "$ok" ]
	# Versions are unique across hosts; a host reads the other's value.
	[ "$(pg_sql "SELECT count(DISTINCT version) FROM dsfs_entry")" -eq \
		"$(pg_sql "SELECT count(*) FROM dsfs_entry")" ]
	i=$(pg_sql "SELECT convert_from(name, 'UTF8') FROM dsfs_entry WHERE size = 99 AND name::text LIKE '%6d6e7432%' LIMIT 1")
	[ -n "$i" ]
	assert_content "$MNT/kv/$i" "$v"
	teardown_host2
}

@test "busy_poll: hosts whose threads poll for the database's answers keep every change; a bad value is refused" {
	fresh_db
	setup_host2
	run mount_dsfs -o "runtime=$URI,busy_poll=1e3"
	[ "$status" -ne 0 ]
	grep -q 'busy_poll=1e3: not a number of microseconds from 0 to 100000' "$T/dsfs.err"
	! is_mounted "$MNT"
	mount_dsfs -o "runtime=$URI,busy_poll=500"
	STORE=$STORE2 MNT=$MNT2 mount_dsfs -o "runtime=$URI,busy_poll=500"
	mkdir "$MNT/kv/p"
	# Both hosts at once: each makes 50 names and writes each again.
	local m i p pids=()
	for m in "$MNT" "$MNT2"; do
		(
			for i in $(seq 1 50); do
				echo "$i" >"$m/kv/p/${m##*/}-$i" || exit 1
				echo "\"$i\"" >"$m/kv/p/${m##*/}-$i" || exit 1
			done
		) &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p"
	done
	for i in $(seq 1 50); do
		[ "$(cat "$MNT2/kv/p/mnt-$i")" = "\"$i\"" ] ||
			fail "kv/p/mnt-$i on the second host: $(cat "$MNT2/kv/p/mnt-$i")"
		[ "$(cat "$MNT/kv/p/mnt2-$i")" = "\"$i\"" ] ||
			fail "kv/p/mnt2-$i on the first host: $(cat "$MNT/kv/p/mnt2-$i")"
	done
	[ "$(ls "$MNT/kv/p" | wc -l)" -eq 100 ]
	[ "$(pg_sql "SELECT count(*) FROM dsfs_entry WHERE parent = 'kv/p'::bytea")" -eq 100 ]
	teardown_host2
}

@test "busy_poll: while a request waits for the database, the mount serves the others" {
	fresh_db
	mount_dsfs -o "runtime=$URI,busy_poll=50"
	echo '{"a":1}' >"$MNT/kv/x"
	echo '"e"' >"$MNT/ephemeral/kv/e"
	pg_pause
	# A's read asks the server (a shared runtime's names are not
	# cached), which does not answer.
	cat "$MNT/kv/x" >"$T/a.out" &
	local a=$!
	sleep 1
	kill -0 "$a" || fail "the read of kv/x did not wait for the server"
	# Only one thread of the mount reads the kernel's requests at a
	# time (fuse_loop.c): it must hand over while A waits.
	run tmo cat "$MNT/ephemeral/kv/e"
	[ "$status" -eq 0 ]
	[ "$output" = '"e"' ]
	run tmo stat -c %s "$MNT/ephemeral/kv/e"
	[ "$output" = 4 ]
	kill -0 "$a" || fail "the read of kv/x ended before the server answered"
	pg_resume
	wait "$a"
	assert_content "$T/a.out" '{"a":1}
'
}

@test "the budget is the store's: a host mounted without runtime_size uses the one recorded, and a host with it changes it for all" {
	fresh_db
	setup_host2
	mount_dsfs -o "runtime=$URI,runtime_size=2K"
	STORE=$STORE2 MNT=$MNT2 mount_dsfs -o "runtime=$URI"
	[ "$(pg_sql "SELECT v FROM dsfs_meta WHERE k = 'runtime_budget'")" = 2048 ]
	run tmo "$DSFSCTL" usage "$STORE2"
	[[ "$output" == *"runtime 0 2048"* ]] || fail "$output"
	local v
	v=\"$(head -c 1500 /dev/zero | tr '\0' x)\"
	printf %s "$v" >"$MNT/kv/a"
	# Host 2 holds the store's 2K, not its own default of 13M.
	run pyop write "$MNT2/kv/b" "$v"
	[ "$output" = ENOSPC ] || fail "$output"
	assert_content "$MNT/kv/a" "$v"
	# A host mounted with a size records it for every host.
	unmount_dsfs
	mount_dsfs -o "runtime=$URI,runtime_size=8K"
	[ "$(pg_sql "SELECT v FROM dsfs_meta WHERE k = 'runtime_budget'")" = 8192 ]
	run pyop write "$MNT2/kv/b" "$v"
	[ "$output" = OK ] || fail "$output"
	run tmo "$DSFSCTL" usage "$STORE2"
	[[ "$output" == *"runtime 3006 8192"* ]] || fail "$output"
	teardown_host2
}

@test "outage: the server stops under load, operations fail with EIO in bounded time, nothing acknowledged is lost, the mount recovers" {
	local i start took
	fresh_db
	mount_dsfs_fg -o "runtime=$URI"
	# Writers running while the server goes away and comes back.
	(
		for i in $(seq 1 300); do
			if [ "$(pyop write "$MNT/kv/w$i" "$i")" = OK ]; then
				echo "$i"
			fi
		done >"$T/acked"
	) &
	local writer=$!
	sleep 0.5
	"$PG_SERVER_SH" stop "$PG_DIR"
	start=$(date +%s)
	run pyop write "$MNT/kv/down" '"x"'
	took=$(($(date +%s) - start))
	[ "$output" = EIO ]
	[ "$took" -le 20 ]
	run pyop read "$MNT/kv/w1"
	[[ "$output" == EIO || "$output" == 1 ]] # the kernel may cache it
	grep -q "cannot reach the database" "$T/log"
	"$PG_SERVER_SH" restart "$PG_DIR"
	wait "$writer"
	# Without a remount: the mount works again.
	echo '"back"' >"$MNT/kv/after"
	assert_content "$MNT/kv/after" '"back"
'
	grep -q "connected again" "$T/log"
	# Every acknowledged write is there, with its value.
	[ -s "$T/acked" ]
	for i in $(cat "$T/acked"); do
		[ "$(pg_sql "SELECT convert_from(value, 'UTF8') FROM dsfs_entry WHERE name = 'w$i'::bytea")" = "$i" ] ||
			fail "acknowledged kv/w$i lost"
	done
}
