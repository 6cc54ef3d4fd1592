/*
 * control_check.c - dsfsctl check of a mounted store whose runtime layer
 * is no SQLite file (-o runtime=memory or postgresql://): the daemon walks
 * its own runtime layer ("admin PID" with "check"; check_live.c is the
 * other side).
 *
 * A SQLite runtime is copied a few pages at a time and the copy checked,
 * while the writers go on.  The others are checked in a snapshot of the
 * layer (layer.h, snapshot): a copy of a memory layer, made while its
 * writers wait for the copy alone, or one REPEATABLE READ transaction of
 * PostgreSQL, for which no writer of any host waits.  Either way the walk
 * sees one state of the layer, and its recount of the usage is compared
 * with the figure of the same moment, whatever is written meanwhile.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "dsfsctl.h"
#include "layer.h"

int control_check(struct dsfs_ctx *ctx, FILE *out, unsigned *problems,
		  struct store_error *e)
{
	struct dsfs_layer *snap;
	int rc;

	rc = layer_snapshot(ctx->stack.layer[L_RUNTIME], &snap);
	if (rc)
		return store_fail(e, rc, "%s: runtime layer: check: %s",
				  ctx->store,
				  rc == -EOPNOTSUPP ? "this backend has no "
						      "snapshot to check" :
						      strerror(-rc));
	*problems = check_layer_report(snap, "runtime", false, out, 0,
				       PROGRESS_OFF);
	layer_close(snap);
	return 0;
}
