/*
 * store_cmds.c - dsfsctl's commands on a whole store: factory-reset, usage
 * and check.
 *
 * factory-reset and usage run offline when dsfsctl can take STORE/lock and
 * otherwise ask the daemon that has the store (control.h); check reads
 * every value of both store files, or of a snapshot of them when the
 * store is mounted (check_live.c).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "watch.h"
#include "control.h"
#include "dsfs.h"
#include "dsfsctl.h"
#include "layer.h"

int store_ask(const struct store *s, const char *request, char *reply,
	      size_t size, struct store_error *e)
{
	return store_call(s, request, NULL, 0, NULL, NULL, reply, size, e);
}

int store_call(const struct store *s, const char *request, const void *body,
	       size_t blen, char **data, size_t *dlen, char *reply, size_t size,
	       struct store_error *e)
{
	bool answered;
	int rc;

	rc = control_call(s->path, request, body, blen, data, dlen, reply, size,
			  &answered);
	if (!answered && (rc == -ENOENT || rc == -ECONNREFUSED))
		return store_fail(
			e, -EBUSY,
			"%s: store is in use but no daemon answers on %s "
			"(another dsfsctl is working on it, or dsfs is "
			"starting or stopping): try again",
			s->path, STORE_SOCKET);
	if (rc)
		return store_fail(e, rc, "%s: %s", s->path, reply);
	return 0;
}

/* Open the store file name offline: -ENOENT if it is absent.  Offline
 * the mount options are unknown: the default budgets. */
static int open_offline(struct store *s, const char *name,
			struct dsfs_layer **l, struct store_error *e)
{
	uint64_t budget = DSFS_DEFAULT_FACTORY_SIZE;
	int rc;

	if (strcmp(name, STORE_RUNTIME) == 0)
		budget = DSFS_DEFAULT_RUNTIME_SIZE;
	rc = store_open_layer(s->path, name, budget, false, NULL, l, e);
	/* dsfsctl watch on this store hears of what changes here. */
	if (rc == 0 && strcmp(name, STORE_RUNTIME) == 0)
		rc = watch_offline_observe(s->path, l);
	return rc;
}

/* Open store and take its lock; or, when a daemon has the store, ask it
 * request instead (*asked), its answer in reply. */
static int offline_or_ask(struct store *s, const char *store,
			  const char *request, char reply[CONTROL_REPLY_MAX],
			  bool *asked, struct store_error *e)
{
	int rc;

	*asked = false;
	rc = store_open(s, store, false, true, e);
	if (rc)
		return rc;
	rc = store_lock(s, e);
	if (rc != -EWOULDBLOCK)
		return rc;
	*asked = true;
	return store_ask(s, request, reply, CONTROL_REPLY_MAX, e);
}

int store_factory_reset(const char *store, struct store_error *e)
{
	char reply[CONTROL_REPLY_MAX];
	struct dsfs_layer *l;
	struct store s;
	bool asked;
	int rc;

	rc = offline_or_ask(&s, store, "factory-reset", reply, &asked, e);
	if (rc || asked)
		goto out_store;
	rc = open_offline(&s, STORE_RUNTIME, &l, e);
	if (rc == -ENOENT) {
		rc = 0; /* never mounted: nothing to reset */
		goto out_store;
	}
	if (rc)
		goto out_store;
	rc = layer_clear(l);
	if (rc == 0)
		rc = layer_sync(l);
	if (rc)
		store_fail(e, rc, "%s/%s: factory reset: %s", store,
			   STORE_RUNTIME, strerror(-rc));
	layer_close(l);
out_store:
	store_close(&s);
	return rc;
}

static int print_usage_of(FILE *out, const char *name, struct dsfs_layer *l,
			  uint64_t budget, struct store_error *e)
{
	uint64_t used = 0;
	int rc;

	if (l) {
		rc = layer_usage(l, &used, &budget);
		if (rc)
			return store_fail(e, rc, "%s layer: %s", name,
					  strerror(-rc));
	}
	fprintf(out, "%s %llu %llu\n", name, (unsigned long long)used,
		(unsigned long long)budget);
	return 0;
}

int store_usage(const char *store, FILE *out, struct store_error *e)
{
	char reply[CONTROL_REPLY_MAX];
	struct dsfs_layer *runtime = NULL, *factory = NULL;
	struct store s;
	bool asked;
	int rc;

	rc = offline_or_ask(&s, store, "usage", reply, &asked, e);
	if (rc == 0 && asked)
		fputs(reply, out);
	if (rc || asked)
		goto out_store;
	rc = open_offline(&s, STORE_RUNTIME, &runtime, e);
	if (rc && rc != -ENOENT)
		goto out_store;
	rc = open_offline(&s, STORE_FACTORY, &factory, e);
	if (rc && rc != -ENOENT)
		goto out_runtime;
	rc = print_usage_of(out, "ephemeral", NULL, DSFS_DEFAULT_EPHEMERAL_SIZE,
			    e);
	if (rc == 0)
		rc = print_usage_of(out, "runtime", runtime,
				    DSFS_DEFAULT_RUNTIME_SIZE, e);
	if (rc == 0)
		rc = print_usage_of(out, "factory", factory,
				    DSFS_DEFAULT_FACTORY_SIZE, e);
	if (factory)
		layer_close(factory);
out_runtime:
	if (runtime)
		layer_close(runtime);
out_store:
	store_close(&s);
	return rc;
}

/* Where layer_sqlite_integrity() reports to: one line each. */
struct integrity_report {
	FILE *out;
	const char *label;
	unsigned problems;
};

static void report_integrity(void *ctx, const char *what, const char *detail)
{
	struct integrity_report *r = ctx;

	fprintf(r->out, "%s: %s: %s\n", r->label, what, detail);
	r->problems++;
}

/* Walk the layer of store file name (every entry, the usage against a
 * recount), reporting to out under label; problems found before are
 * added. */
static unsigned check_opened(struct store *s, const char *name,
			     const char *label, FILE *out, unsigned problems,
			     enum progress_mode progress)
{
	struct store_error e = {.text = ""};
	struct dsfs_layer *l = NULL;
	int rc;

	rc = open_offline(s, name, &l, &e);
	if (rc) {
		fprintf(out, "%s: cannot open: %s\n", label, e.text);
		return problems + 1;
	}
	problems = check_layer_report(l, label,
				      strcmp(name, STORE_RUNTIME) != 0, out,
				      problems, progress);
	layer_close(l);
	return problems;
}

/* Check one store file: SQLite's integrity, then every entry.  A runtime
 * that STORE/runtime.uri names instead (PostgreSQL) has only the walk. */
unsigned check_file(struct store *s, const char *name, FILE *out,
		    enum progress_mode progress)
{
	struct integrity_report ir = {.out = out, .label = name};
	struct stat st;
	char *path;
	int rc;

	if (strcmp(name, STORE_RUNTIME) == 0 &&
	    (path = store_recorded_runtime(s->path))) {
		rc = strcmp(path, "memory") == 0;
		fprintf(out, "runtime: %s%s\n", rc ? "" : "in PostgreSQL, ",
			rc ? "kept in memory, nothing to check" : path);
		free(path);
		return rc ? 0 :
			    check_opened(s, name, "runtime", out, 0, progress);
	}
	if (fstatat(s->dirfd, name, &st, 0) != 0 && errno == ENOENT) {
		fprintf(out, "%s: absent%s\n", name,
			strcmp(name, STORE_RUNTIME) == 0 ?
				" (the store was never mounted)" :
				" (empty factory layer)");
		return 0;
	}
	path = store_file(s->path, name);
	if (!path)
		return 1;
	layer_sqlite_integrity(path, report_integrity, &ir);
	free(path);
	return check_opened(s, name, name, out, ir.problems, progress);
}

int store_check(const char *store, FILE *out, enum progress_mode progress,
		struct store_error *e)
{
	unsigned problems;
	struct store s;
	int rc;

	rc = store_open(&s, store, false, true, e);
	if (rc)
		return rc;
	rc = store_lock(&s, e);
	if (rc == -EWOULDBLOCK) /* mounted: check_live.c */
		rc = check_mounted(&s, &problems, out, progress, e);
	else if (rc == 0) {
		problems = check_file(&s, STORE_RUNTIME, out, progress);
		problems += check_file(&s, STORE_FACTORY, out, progress);
	}
	if (rc)
		goto out_store;
	if (problems)
		rc = store_fail(e, -EINVAL, "%s: %u problem%s found", store,
				problems, problems == 1 ? "" : "s");
out_store:
	store_close(&s);
	return rc;
}
