/*
 * setid.c - the set-user-ID and set-group-ID bits, where the kernel leaves
 * them to the filesystem: a write clears them.  (A directory's
 * set-group-ID bit passes its group, and to a new directory the bit, to
 * what is made in it: the layer that makes the entry does that, reading
 * the directory in the same change; layer.h, inherit_group.)
 *
 * A chown and a truncate are handled by the kernel: without
 * FUSE_CAP_HANDLE_KILLPRIV (fuse_ops.c turns it off) it works out which
 * bits they clear and sends the new mode with the SETATTR.  A write is
 * not: the kernel only flags it FUSE_WRITE_KILL_SUIDGID when the writer
 * lacks CAP_FSETID, and an open with O_TRUNC FUSE_OPEN_KILL_SUIDGID (with
 * handle_killpriv_v2), and libfuse 3.14 passes neither flag on.  So the
 * daemon asks the same question itself, of /proc/PID/status of the
 * writing thread (which is blocked in its write, so still there), and
 * clears what setattr_should_drop_suidgid() clears on a local filesystem:
 * nothing for a writer with CAP_FSETID; otherwise S_ISUID, S_ISGID with
 * S_IXGRP, and S_ISGID alone (a mandatory-locking mark) when the writer is
 * not in the file's group.  A writer whose status cannot be read is
 * taken to have no capability and no group but its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon.h"
#include "handle.h"

#define CAP_FSETID_BIT 4 /* linux/capability.h: CAP_FSETID */

/* Who is writing, as the kernel's permission checks see it. */
struct writer {
	bool fsetid; /* CAP_FSETID in the daemon's user namespace */
	gid_t fsgid;
	gid_t *groups; /* supplementary; owned */
	size_t ngroups;
};

/* Whether the process pid is in the daemon's user namespace: a
 * capability held in another one means nothing here. */
static bool same_userns(pid_t pid)
{
	struct stat mine, theirs;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
	if (stat("/proc/self/ns/user", &mine) != 0 || stat(path, &theirs) != 0)
		return false;
	return mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino;
}

static int add_group(struct writer *w, unsigned long long g)
{
	gid_t *more = realloc(w->groups, (w->ngroups + 1) * sizeof(*more));

	if (!more)
		return -ENOMEM;
	w->groups = more;
	w->groups[w->ngroups++] = (gid_t)g;
	return 0;
}

/* The text after "name:" if line is that field of /proc/PID/status. */
static const char *field(const char *line, const char *name)
{
	size_t len = strlen(name);

	if (strncmp(line, name, len) != 0 || line[len] != ':')
		return NULL;
	return line + len + 1;
}

/* The next number of a field, in base, into *v; false at the end. */
static bool next_number(const char **p, int base, unsigned long long *v)
{
	char *end;

	*v = strtoull(*p, &end, base);
	if (end == *p)
		return false;
	*p = end;
	return true;
}

/* Fill w from /proc/PID/status of the request's thread. */
static int read_writer(fuse_req_t req, struct writer *w)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);
	char path[64], *line = NULL;
	unsigned long long v;
	const char *p;
	size_t cap = 0;
	int i, rc = 0;
	FILE *f;

	memset(w, 0, sizeof(*w));
	w->fsgid = fc->gid;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)fc->pid);
	f = fc->pid > 0 ? fopen(path, "re") : NULL;
	if (!f)
		return 0; /* gone, or unknown: no capability */
	while (rc == 0 && getline(&line, &cap, f) > 0) {
		if ((p = field(line, "CapEff")) && next_number(&p, 16, &v)) {
			w->fsetid = (v >> CAP_FSETID_BIT) & 1;
		} else if ((p = field(line, "Gid"))) {
			/* real, effective, saved, filesystem */
			for (i = 0; i < 4 && next_number(&p, 10, &v); i++)
				if (i == 3)
					w->fsgid = (gid_t)v;
		} else if ((p = field(line, "Groups"))) {
			while (rc == 0 && next_number(&p, 10, &v))
				rc = add_group(w, v);
		}
	}
	free(line);
	fclose(f);
	if (w->fsetid && !same_userns(fc->pid))
		w->fsetid = false;
	return rc;
}

static bool in_group(const struct writer *w, gid_t gid)
{
	size_t i;

	if (w->fsgid == gid)
		return true;
	for (i = 0; i < w->ngroups; i++)
		if (w->groups[i] == gid)
			return true;
	return false;
}

/* The bits a write by w clears from a file of this mode and group. */
static uint32_t bits_to_clear(const struct writer *w, uint32_t mode, gid_t gid)
{
	uint32_t bits = 0;

	if (w->fsetid)
		return 0;
	if (mode & S_ISUID)
		bits |= S_ISUID;
	if ((mode & S_ISGID) && ((mode & S_IXGRP) || !in_group(w, gid)))
		bits |= S_ISGID;
	return bits;
}

/* Clear the bits the writer of req may not keep on the file n stands for;
 * *mode is then the file's mode, and *seen (if not NULL) what n's name
 * holds, as found or as changed here. */
static int clear_for_writer(struct dsfs_ctx *ctx, fuse_req_t req,
			    struct node *n, uint32_t *mode, struct seen *seen)
{
	struct dsfs_attr a = {0};
	struct writer w;
	struct found f;
	struct loc l;
	uint32_t bits;
	int rc;

	rc = node_found(ctx, n, &l, &f);
	if (rc)
		return rc == -ESTALE ? 0 : rc; /* gone: nothing to clear */
	*mode = f.attr.mode;
	if (seen) {
		seen->f = f;
		seen->valid = true;
	}
	if (f.attr.kind != DSFS_FILE || !(f.attr.mode & (S_ISUID | S_ISGID)))
		return 0;
	rc = read_writer(req, &w);
	bits = rc ? 0 : bits_to_clear(&w, f.attr.mode, f.attr.gid);
	free(w.groups);
	if (rc || !bits)
		return rc;
	a.mode = f.attr.mode & ~bits;
	clock_gettime(CLOCK_REALTIME, &a.ctime);
	rc = ovl_setattr(&ctx->stack, &l, &a, DSFS_SET_MODE | DSFS_SET_CTIME,
			 &f);
	if (rc) {
		log_fail(&l, NULL, "clearing set-id bits before a write", rc,
			 NULL);
		return rc;
	}
	*mode = a.mode;
	if (seen)
		seen->f = f;
	notify_alias(ctx, &l, false);
	return 0;
}

int setid_write(struct dsfs_ctx *ctx, fuse_req_t req, struct handle *h)
{
	uint32_t mode;
	int rc;

	/* What the file was at open, or after the last clearing: most files
	 * have no set-id bit, and their writes cost nothing more. */
	pthread_mutex_lock(&h->lock);
	mode = h->attr.mode;
	pthread_mutex_unlock(&h->lock);
	if (!h->writable || !(mode & (S_ISUID | S_ISGID)))
		return 0;
	rc = clear_for_writer(ctx, req, h->node, &mode, NULL);
	if (rc == 0) {
		pthread_mutex_lock(&h->lock);
		h->attr.mode = mode;
		pthread_mutex_unlock(&h->lock);
	}
	return rc;
}

int setid_open(struct dsfs_ctx *ctx, fuse_req_t req, struct node *n, int flags,
	       struct seen *seen)
{
	uint32_t mode = 0;

	seen->valid = false;
	if ((flags & O_ACCMODE) == O_RDONLY || !(flags & O_TRUNC) ||
	    is_fixed(n) || n->special != NODE_PLAIN)
		return 0;
	return clear_for_writer(ctx, req, n, &mode, seen);
}
