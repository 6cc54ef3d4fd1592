/*
 * libpq_dl.h - libpq, loaded when a PostgreSQL runtime is first used.
 *
 * dsfs is not linked with libpq: libpq's chain of libraries (libssl,
 * libcrypto, GnuTLS, Kerberos, LDAP, SASL) would be mapped and relocated
 * by every daemon and dsfsctl, about 4.7 MiB of resident pages at start,
 * whether the runtime is in SQLite, in memory or in PostgreSQL.
 * libpq_load() opens libpq.so.5 once and fills `libpq` with the
 * functions the PostgreSQL layer and cluster call, as libpq.PQexec(...);
 * their types are those of libpq-fe.h.  The entry points that reach a
 * server (layer_pg_open(), layer_pg_shown(), cluster_pg_open()) load it
 * first, so that no other call can come before it.
 *
 * `libpq` is written once, under pthread_once(), before any caller can
 * read it, and never again: it is the dynamic linker's table, filled
 * late, not state of the program.
 */
#ifndef DSFS_LIBPQ_DL_H
#define DSFS_LIBPQ_DL_H

#include <libpq-fe.h>
#include <stddef.h>

/* The soname of libpq 10 and later (Debian's libpq5). */
#define LIBPQ_SONAME "libpq.so.5"

#define LIBPQ_FUNCTIONS(X)      \
	X(PQbackendPID)         \
	X(PQcancel)             \
	X(PQclear)              \
	X(PQcmdTuples)          \
	X(PQconnectdbParams)    \
	X(PQconninfoFree)       \
	X(PQconninfoParse)      \
	X(PQconsumeInput)       \
	X(PQenterPipelineMode)  \
	X(PQerrorMessage)       \
	X(PQexec)               \
	X(PQexecParams)         \
	X(PQexecPrepared)       \
	X(PQexitPipelineMode)   \
	X(PQfinish)             \
	X(PQflush)              \
	X(PQfreeCancel)         \
	X(PQfreemem)            \
	X(PQgetCancel)          \
	X(PQgetResult)          \
	X(PQgetisnull)          \
	X(PQgetlength)          \
	X(PQgetvalue)           \
	X(PQisBusy)             \
	X(PQnfields)            \
	X(PQnotifies)           \
	X(PQntuples)            \
	X(PQpipelineSync)       \
	X(PQprepare)            \
	X(PQresultErrorField)   \
	X(PQresultErrorMessage) \
	X(PQresultStatus)       \
	X(PQsendFlushRequest)   \
	X(PQsendQueryParams)    \
	X(PQsendQueryPrepared)  \
	X(PQsetNoticeProcessor) \
	X(PQsocket)             \
	X(PQstatus)             \
	X(PQtransactionStatus)

struct libpq_api {
/* A member named as the function: a name cannot be parenthesized. */
/* NOLINTNEXTLINE(bugprone-macro-parentheses) */
#define LIBPQ_MEMBER(name) __typeof__(name) *name;
	LIBPQ_FUNCTIONS(LIBPQ_MEMBER)
#undef LIBPQ_MEMBER
};

extern struct libpq_api libpq;

/* Load libpq and every function of LIBPQ_FUNCTIONS: 0, or -ELIBACC with
 * why (the library's name and the loader's reason; logged once, at the
 * first try), at the first call and every call after. */
int libpq_load(char *why, size_t cap);

#endif
