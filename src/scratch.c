/*
 * scratch.c - editors' and tools' scratch files under kv/ and devices/.
 *
 * vim writes .NAME.swp and 4913 beside the file it edits and renames NAME
 * to NAME~ before writing the new NAME; emacs writes #NAME#.  Names that
 * match the mount's scratch patterns (-o scratch=, DSFS_SCRATCH_DEFAULT)
 * hold any bytes (DSFS_CONTENT_SCRATCH: never validated), are made in the
 * ephemeral layer through the merged trees (overlay.c's target_layer), so
 * they never reach the store, a dump, a diff or a factory image, and are
 * listed while they exist.
 *
 * Renames are where an editor's save is made safe against a crash:
 *   - a scratch file renamed over an entry commits its bytes to the entry,
 *     validated like any write, and the scratch file goes;
 *   - an entry renamed to a scratch name is copied there, and the entry
 *     keeps its value until the new one is committed: a crash between
 *     vim's "NAME -> NAME~" and its write of the new NAME leaves the old
 *     value, not a store without NAME.  The entry is remembered as moved
 *     (a few, in memory), so that the next open of it for writing starts
 *     empty, as the editor expects of a name it renamed away.
 * Everything else goes to ovl_rename() unchanged.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsfs.h"
#include "log.h"
#include "validate.h"

/* Entries renamed to a scratch name and not written since: the newest
 * SCRATCH_MOVED_MAX, oldest forgotten first. */
#define SCRATCH_MOVED_MAX 16
struct scratch_moved {
	pthread_mutex_t lock;
	char *keys[SCRATCH_MOVED_MAX];
	unsigned next;
};

int scratch_init(struct dsfs_stack *s)
{
	s->moved = calloc(1, sizeof(*s->moved));
	if (!s->moved || pthread_mutex_init(&s->moved->lock, NULL) != 0) {
		free(s->moved);
		s->moved = NULL;
		return -ENOMEM;
	}
	return 0;
}

void scratch_destroy(struct dsfs_stack *s)
{
	unsigned i;

	if (!s->moved)
		return;
	for (i = 0; i < SCRATCH_MOVED_MAX; i++)
		free(s->moved->keys[i]);
	pthread_mutex_destroy(&s->moved->lock);
	free(s->moved);
	s->moved = NULL;
}

/* Forget key (take) or remember it (!take); true if it was there. */
static bool moved_mark(struct dsfs_stack *s, const char *key, bool take)
{
	struct scratch_moved *m = s->moved;
	bool found = false;
	unsigned i;

	if (!m)
		return false;
	pthread_mutex_lock(&m->lock);
	for (i = 0; i < SCRATCH_MOVED_MAX; i++) {
		if (m->keys[i] && strcmp(m->keys[i], key) == 0) {
			free(m->keys[i]);
			m->keys[i] = NULL;
			found = true;
		}
	}
	if (!take) {
		/* Out of memory: the next writer merely keeps the old bytes
		 * it does not overwrite, as before this was remembered. */
		free(m->keys[m->next]);
		m->keys[m->next] = strdup(key);
		m->next = (m->next + 1) % SCRATCH_MOVED_MAX;
	}
	pthread_mutex_unlock(&m->lock);
	return found;
}

bool scratch_take_moved(struct dsfs_stack *s, const struct loc *l)
{
	return l->view == VIEW_MERGED && moved_mark(s, l->key, true);
}

bool scratch_name(const char *patterns, const char *name)
{
	char pat[256];
	const char *p, *end;
	size_t n;

	if (!patterns)
		return false;
	for (p = patterns; *p; p = *end ? end + 1 : end) {
		end = strchr(p, ':');
		if (!end)
			end = p + strlen(p);
		n = (size_t)(end - p);
		if (n == 0 || n >= sizeof(pat))
			continue;
		memcpy(pat, p, n);
		pat[n] = '\0';
		if (fnmatch(pat, name, FNM_PERIOD) == 0)
			return true;
	}
	return false;
}

bool scratch_loc(const struct dsfs_stack *s, const struct loc *l)
{
	const char *slash;

	if (l->tree != TREE_KV && l->tree != TREE_DEVICES)
		return false;
	slash = strrchr(l->key, '/');
	return slash && scratch_name(s->scratch, slash + 1);
}

/* Copy the file at from to the name to (made or replaced), with from's
 * mode, owner and times; with check, validated as JSON first. */
static int copy_value(struct dsfs_stack *s, const struct loc *from,
		      const struct loc *to, bool check)
{
	const char *type = "scratch", *why = NULL;
	struct found f, made;
	struct dsfs_attr a;
	char *data = NULL;
	size_t len = 0;
	int rc;

	rc = ovl_read_all(s, from, &f, &data, &len);
	if (rc)
		return rc;
	if (check) {
		rc = validate_buffer(DSFS_CONTENT_JSON, data, len, &type, &why);
		if (rc) {
			log_warn("%s: rename over %s refused: %s", from->key,
				 to->key, why ? why : "invalid content");
			goto out;
		}
	}
	a = f.attr;
	snprintf(a.type, sizeof(a.type), "%s", type);
	a.token[0] = '\0';
	rc = ovl_commit(s, to, &a, data, len, &made);
	if (rc == 0 && (made.attr.mode != a.mode || made.attr.uid != a.uid ||
			made.attr.gid != a.gid))
		/* ovl_commit() keeps the owner and mode of a value it
		 * replaces; the renamed file's are the ones to keep. */
		rc = ovl_setattr(s, to, &a,
				 DSFS_SET_MODE | DSFS_SET_UID | DSFS_SET_GID,
				 &made);
	if (rc)
		log_warn("%s: rename to %s: %s", from->key, to->key,
			 strerror(-rc));
out:
	free(data);
	return rc;
}

int scratch_rename(struct dsfs_stack *s, const struct loc *from,
		   const struct loc *to, unsigned flags)
{
	bool from_scratch = scratch_loc(s, from),
	     to_scratch = scratch_loc(s, to);
	struct found f, t;
	int rc;

	if (from->view != VIEW_MERGED || to->view != VIEW_MERGED ||
	    from_scratch == to_scratch || strcmp(from->key, to->key) == 0)
		return ovl_rename(s, from, to, flags);
	rc = ovl_lookup(s, from, &f);
	if (rc)
		return rc;
	if (f.attr.kind != DSFS_FILE)
		return ovl_rename(s, from, to, flags);
	rc = ovl_lookup(s, to, &t);
	if (rc == 0 && (flags & DSFS_RENAME_NOREPLACE))
		return -EEXIST;
	if (rc == 0 && t.attr.kind == DSFS_DIR)
		return -EISDIR;
	if (rc && rc != -ENOENT)
		return rc;
	rc = copy_value(s, from, to, from_scratch);
	if (rc)
		return rc;
	if (!from_scratch) {
		moved_mark(s, from->key, false);
		return 0;
	}
	moved_mark(s, to->key, true); /* it has its value now */
	return ovl_unlink(s, from, NULL);
}
