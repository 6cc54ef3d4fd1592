/*
 * pg_test.c - the unit tests' PostgreSQL server (pg_test.h).  Its client
 * calls libpq through the table the layer uses (libpq_dl.h).
 */
#include "pg_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char uri[512];
static char dir[128]; /* the server's directory, if ours */
static char script[512];
static PGconn *admin;

static void bail(const char *what, const char *detail)
{
	printf("Bail out! PostgreSQL: %s%s%s\n", what, detail ? ": " : "",
	       detail ? detail : "");
	exit(1);
}

static int server(const char *cmd)
{
	char line[1024];

	snprintf(line, sizeof(line), "'%s' %s '%s/s' >&2", script, cmd, dir);
	return system(line);
}

static void stop_at_exit(void)
{
	char line[256];

	if (admin)
		libpq.PQfinish(admin);
	admin = NULL;
	if (!dir[0])
		return;
	server("stop");
	snprintf(line, sizeof(line), "rm -rf '%s'", dir);
	if (system(line) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	dir[0] = '\0';
}

static void connect_admin(void)
{
	const char *const kw[] = {"dbname", NULL};
	const char *val[] = {uri, NULL};
	char why[256];

	if (libpq_load(why, sizeof(why)) != 0)
		bail("libpq", why);
	if (admin && libpq.PQstatus(admin) == CONNECTION_OK)
		return;
	if (admin)
		libpq.PQfinish(admin);
	admin = libpq.PQconnectdbParams(kw, val, 1);
	if (libpq.PQstatus(admin) != CONNECTION_OK)
		bail("cannot connect", libpq.PQerrorMessage(admin));
}

const char *pg_test_uri(void)
{
	const char *given = getenv("DSFS_TEST_PG_URI");
	const char *top = getenv("TOP_SRCDIR");
	const char *tmp = getenv("TMPDIR");

	if (uri[0])
		return uri;
	if (given && *given) {
		snprintf(uri, sizeof(uri), "%s", given);
		connect_admin();
		return uri;
	}
	if (!top || !*top)
		bail("no server", "set DSFS_TEST_PG_URI, or TOP_SRCDIR to "
				  "start one with tests/pg_server.sh");
	snprintf(script, sizeof(script), "%s/tests/pg_server.sh", top);
	snprintf(dir, sizeof(dir), "%s/dsfs-pgunit.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir) || chmod(dir, 0755) != 0)
		bail("mkdtemp", dir);
	atexit(stop_at_exit);
	if (server("start") != 0)
		bail("tests/pg_server.sh start failed", dir);
	snprintf(uri, sizeof(uri), "postgresql:///dsfs?host=%s/s&user=postgres",
		 dir);
	connect_admin();
	return uri;
}

void pg_test_sql(const char *sql)
{
	PGresult *r;

	pg_test_uri();
	connect_admin();
	r = libpq.PQexec(admin, sql);
	if (libpq.PQresultStatus(r) != PGRES_COMMAND_OK &&
	    libpq.PQresultStatus(r) != PGRES_TUPLES_OK)
		bail(sql, libpq.PQresultErrorMessage(r));
	libpq.PQclear(r);
}

void pg_test_reset(void)
{
	pg_test_sql("SET client_min_messages = warning;"
		    " DROP SCHEMA public CASCADE; CREATE SCHEMA public");
}

int pg_test_stop(void)
{
	if (!dir[0])
		return -1;
	if (admin)
		libpq.PQfinish(admin);
	admin = NULL;
	return server("stop") == 0 ? 0 : -1;
}

int pg_test_start(void)
{
	if (!dir[0])
		return -1;
	return server("restart") == 0 ? 0 : -1;
}
