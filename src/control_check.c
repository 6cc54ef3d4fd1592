/*
 * control_check.c - dsfsctl check of a mounted store whose runtime layer
 * is no SQLite file (-o runtime=memory or postgresql://): the daemon walks
 * its own runtime layer ("admin PID" with "check"; check_live.c is the
 * other side).
 *
 * A SQLite runtime is copied a few pages at a time and the copy checked,
 * while the writers go on.  A memory layer has nothing to copy from
 * outside the daemon, and a PostgreSQL one is walked here rather than by
 * dsfsctl's own connection, so that the mount's writers cannot change it
 * half way: the walk holds the stack's lock shared, like a dump, so this
 * host's writers wait for it (they are not refused) and every value is
 * read from one state of the layer.  Other hosts of a shared runtime do
 * not take that lock: if the layer's usage moved during the walk, another
 * host wrote, and the walk is made again, CHECK_TRIES times at most, so
 * that its recount is compared with the figure of the same moment.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "dsfsctl.h"
#include "layer.h"

#define CHECK_TRIES 3

/* One walk into a buffer of its own; *moved when the usage changed. */
static int walk_once(struct dsfs_ctx *ctx, char **text, size_t *len,
		     unsigned *problems, bool *moved)
{
	struct dsfs_layer *l;
	uint64_t before = 0, after = 0, budget;
	FILE *mem;
	int rc;

	mem = open_memstream(text, len);
	if (!mem)
		return -ENOMEM;
	ovl_admin_lock(&ctx->stack, false);
	l = ctx->stack.layer[L_RUNTIME];
	rc = layer_usage(l, &before, &budget);
	*problems =
		check_layer_report(l, "runtime", false, mem, 0, PROGRESS_OFF);
	if (rc == 0)
		rc = layer_usage(l, &after, &budget);
	ovl_admin_unlock(&ctx->stack);
	*moved = rc == 0 && before != after;
	if (fclose(mem) != 0)
		rc = -ENOMEM;
	return rc;
}

int control_check(struct dsfs_ctx *ctx, FILE *out, unsigned *problems,
		  struct store_error *e)
{
	char *text = NULL;
	size_t len = 0;
	bool moved = true;
	int tries, rc = 0;

	for (tries = 0; moved && tries < CHECK_TRIES; tries++) {
		free(text);
		text = NULL;
		rc = walk_once(ctx, &text, &len, problems, &moved);
		if (rc)
			break;
	}
	if (rc == 0 && fwrite(text, 1, len, out) != len)
		rc = -EIO;
	if (rc == 0 && moved)
		fprintf(out,
			"runtime: other hosts kept writing during %d walks: "
			"the usage was compared with a moving figure\n",
			CHECK_TRIES);
	free(text);
	if (rc)
		return store_fail(e, rc, "%s: runtime layer: check: %s",
				  ctx->store, strerror(-rc));
	return 0;
}
