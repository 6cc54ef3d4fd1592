/*
 * pg_test.h - a PostgreSQL server for the unit tests of the PostgreSQL
 * layer: the one named by $DSFS_TEST_PG_URI, or one of their own started
 * with tests/pg_server.sh (found through $TOP_SRCDIR, which make check
 * sets) and stopped at exit.  No server means a "Bail out!": the tests
 * fail, they never skip.
 */
#ifndef DSFS_PG_TEST_H
#define DSFS_PG_TEST_H

#include "libpq_dl.h"

/* The URI of a database for the tests; bails out if there is none. */
const char *pg_test_uri(void);
/* Empty the database: a layer opened next makes its schema afresh. */
void pg_test_reset(void);
/* Run sql as the tests' own client; bails out on failure. */
void pg_test_sql(const char *sql);
/* Stop and start the server of pg_test_uri() (an outage); only for a
 * server of the tests' own: returns -1 with a given URI. */
int pg_test_stop(void);
int pg_test_start(void);

#endif
