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
	teardown_store
}

@test "the test server answers on its Unix socket only, as postgres" {
	[ -S "$PG_DIR/.s.PGSQL.5432" ]
	[ "$(pg_sql 'SHOW listen_addresses')" = "" ]
	[ "$(pg_sql 'SELECT current_user')" = postgres ]
	[ "$(stat -c %U "$PG_DIR/pgdata")" = postgres ]
}
