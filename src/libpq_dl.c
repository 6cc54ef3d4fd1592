/*
 * libpq_dl.c - loading libpq at the first use of a PostgreSQL runtime
 * (why: libpq_dl.h).
 */
#include "libpq_dl.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "log.h"

struct libpq_api libpq;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_rc;
static char load_why[256];

static void load(void)
{
	void *lib = dlopen(LIBPQ_SONAME, RTLD_NOW | RTLD_LOCAL);
	const char *missing = NULL;
	const char *err;

	if (!lib) {
		err = dlerror();
		snprintf(load_why, sizeof(load_why),
			 "PostgreSQL's client library cannot be loaded: %s",
			 err ? err : LIBPQ_SONAME);
		load_rc = -ELIBACC;
		log_err("%s", load_why);
		return;
	}
#define LIBPQ_RESOLVE(name)                                 \
	libpq.name = (__typeof__(name) *)dlsym(lib, #name); \
	if (!libpq.name && !missing)                        \
		missing = #name;
	LIBPQ_FUNCTIONS(LIBPQ_RESOLVE)
#undef LIBPQ_RESOLVE
	if (missing) {
		/* A libpq older than 14 (pipeline mode) has no such call. */
		snprintf(load_why, sizeof(load_why),
			 "%s has no %s: dsfs needs libpq 14 or later",
			 LIBPQ_SONAME, missing);
		load_rc = -ELIBACC;
		log_err("%s", load_why);
		return;
	}
	/* Never closed: the layer's connections live until the exit. */
}

int libpq_load(char *why, size_t cap)
{
	pthread_once(&load_once, load);
	if (load_rc && why && cap)
		snprintf(why, cap, "%s", load_why);
	return load_rc;
}
