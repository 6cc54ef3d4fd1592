#!/bin/sh
# pg_server.sh - a throwaway PostgreSQL server for the tests: the Debian
# package's initdb and pg_ctl, a cluster in a directory of the test's own,
# listening only on a Unix socket in that directory, run as the postgres
# user (the server refuses to run as root), with a database "dsfs".
#
#	tests/pg_server.sh start DIR   make DIR/pgdata, start, create dsfs
#	tests/pg_server.sh stop DIR    stop the server (fast shutdown)
#	tests/pg_server.sh restart DIR start a stopped cluster again
#	tests/pg_server.sh uri DIR     the libpq URI of the database dsfs
#	tests/pg_server.sh psql DIR SQL  run SQL in dsfs, print rows unaligned
#
# DIR must be new or empty and reachable by the postgres user (the parent
# directories searchable).  Anything that goes wrong is reported with the
# server's log and a non-zero status: callers fail the test, they never
# skip it.  The binaries are taken from /usr/lib/postgresql/VERSION/bin
# (the highest version installed), or $PG_BINDIR.

set -u

die()
{
	echo "pg_server.sh: $*" >&2
	if [ -n "${dir:-}" ] && [ -f "$dir/server.log" ]; then
		echo "---- $dir/server.log" >&2
		tail -n 40 "$dir/server.log" >&2
	fi
	exit 1
}

bindir()
{
	if [ -n "${PG_BINDIR:-}" ]; then
		echo "$PG_BINDIR"
		return
	fi
	# The Debian layout; /usr/local/bin may hold links or wrappers with
	# the same names, so the package's directory is named explicitly.
	ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# Runs "$@" as the postgres user.
as_pg()
{
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

[ $# -ge 2 ] || die "usage: pg_server.sh start|stop|restart|uri|psql DIR [SQL]"
cmd=$1
dir=$2
bin=$(bindir)
[ -n "$bin" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/initdb" ] ||
	die "FATAL: no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (./bootstrap --deps installs postgresql)"

case $cmd in
uri)
	# host= is the socket directory; user postgres owns everything.
	echo "postgresql:///dsfs?host=$dir&user=postgres"
	exit 0
	;;
start)
	mkdir -p "$dir" || die "cannot make $dir"
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 ||
			die "FATAL: no postgres user (./bootstrap --deps installs postgresql)"
		chown postgres: "$dir" || die "cannot give $dir to postgres"
		as_pg test -w "$dir" ||
			die "FATAL: the postgres user cannot reach $dir (a parent directory is not searchable)"
	fi
	# The socket path must fit sockaddr_un (107 bytes).
	[ ${#dir} -le 90 ] || die "$dir: too long for a Unix socket path"
	out=$(as_pg "$bin/initdb" -D "$dir/pgdata" -U postgres --auth=trust \
		--no-sync -E UTF8 --locale=C 2>&1) ||
		die "initdb failed: $out"
	# fsync off: the tests stop the server cleanly, never the machine,
	# and an fsync per commit would make the suites several times slower
	# on a busy disk.  The daemon's synchronous_commit stays on.
	cat >>"$dir/pgdata/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$dir'
max_connections = 100
fsync = off
shared_buffers = 16MB
EOF
	;;
restart | stop | psql) ;;
*) die "unknown command $cmd" ;;
esac

case $cmd in
start | restart)
	as_pg "$bin/pg_ctl" -D "$dir/pgdata" -l "$dir/server.log" -w -t 60 \
		start >/dev/null 2>&1 || die "pg_ctl start failed"
	if [ "$cmd" = start ]; then
		out=$(as_pg "$bin/createdb" -h "$dir" -U postgres dsfs 2>&1) ||
			die "createdb dsfs failed: $out"
	fi
	;;
stop)
	[ -f "$dir/pgdata/postmaster.pid" ] || exit 0
	as_pg "$bin/pg_ctl" -D "$dir/pgdata" -m fast -w -t 60 stop \
		>/dev/null 2>&1 || die "pg_ctl stop failed"
	;;
psql)
	[ $# -ge 3 ] || die "psql needs SQL"
	as_pg psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$dir" -U postgres \
		-d dsfs -c "$3" || die "psql failed: $3"
	;;
esac
