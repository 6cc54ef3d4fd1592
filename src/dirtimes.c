/*
 * dirtimes.c - the times of a directory whose names change: making,
 * removing or renaming a name sets the mtime and ctime of the directory
 * that holds it to now, as every local filesystem does (make, rsync and
 * backup tools compare them).
 *
 * The layer the change was made in sets its own directory's times in the
 * change's transaction (layer.h, Directory times).  What is left here is
 * what that layer cannot see: the merged view shows the directory of the
 * upper layer that holds one, as overlayfs shows its upper directory, so
 * a writable layer above the changed one that holds a directory of that
 * name gets the same times, with its setattr() (in practice the ephemeral
 * layer, in memory, above runtime: no transaction of a store).  A change
 * through a merged tree counts as made in runtime, below ephemeral.  A
 * directory seen only in the factory layer has been copied up by the
 * change itself; copying it up made a name in its runtime parent, whose
 * times the runtime layer set too, as a name did appear in runtime/.
 *
 * The tree roots (kv, images, and devices/, which is kv's __ID names) are
 * not stored: their times are kept here, in memory, per view and layer,
 * and are the mount's start until a name in them changes.
 *
 * Everything here runs with the stack's lock held exclusive, after the
 * change succeeded.  The change has happened whatever becomes of its
 * directory's times, so a failure to set them is logged, not returned.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "dsfs.h"
#include "log.h"

/* tree_time[][] slots: kv, images, and devices/ (kv's __ID names). */
enum {
	SLOT_KV,
	SLOT_IMAGES,
	SLOT_DEVICES
};

static int tree_slot(enum dsfs_tree tree)
{
	return tree == TREE_IMAGES  ? SLOT_IMAGES :
	       tree == TREE_DEVICES ? SLOT_DEVICES :
				      SLOT_KV;
}

/* A name in a tree root changed, seen through view (a layer index, or
 * DSFS_NLAYERS for the merged trees). */
static void touch_root(struct dsfs_stack *s, int view, const struct loc *l,
		       const char *name, const struct timespec *now)
{
	if (l->tree == TREE_IMAGES) {
		s->tree_time[view][SLOT_IMAGES] = *now;
		return;
	}
	s->tree_time[view][SLOT_KV] = *now;
	if (strncmp(name, "__", 2) == 0 && name[2] != '\0')
		s->tree_time[view][SLOT_DEVICES] = *now; /* devices/ID */
}

static void touch_stored(struct dsfs_stack *s, int i, const char *dir,
			 const struct dsfs_attr *times)
{
	struct dsfs_attr a;
	int rc;

	if (layer_readonly(s->layer[i]) || layer_lookup(s->layer[i], dir, &a) ||
	    a.kind != DSFS_DIR)
		return;
	rc = layer_setattr(s->layer[i], dir, times,
			   DSFS_SET_MTIME | DSFS_SET_CTIME);
	if (rc)
		log_err("%s/%s: setting the directory's times: %s",
			s->layer[i]->name, dir, strerror(-rc));
	else
		ovl_note_file_change(s, dir); /* its listing shows them */
}

void ovl_touch_parent(struct dsfs_stack *s, const struct loc *l, int changed)
{
	const char *slash = strrchr(l->key, '/');
	struct dsfs_attr times = {0};
	char dir[DSFS_KEY_MAX];
	size_t len;
	int i, last;

	if (!slash)
		return;
	len = (size_t)(slash - l->key);
	clock_gettime(CLOCK_REALTIME, &times.mtime);
	times.ctime = times.mtime;
	last = l->view == VIEW_LAYER ? l->layer : L_RUNTIME;
	if (layer_is_root(l->key, len)) {
		touch_root(s, DSFS_NLAYERS, l, slash + 1, &times.mtime);
		for (i = L_EPHEMERAL; i <= last; i++)
			touch_root(s, i, l, slash + 1, &times.mtime);
		return;
	}
	memcpy(dir, l->key, len);
	dir[len] = '\0';
	for (i = L_EPHEMERAL; i < changed && i <= last; i++)
		touch_stored(s, i, dir, &times);
}

void ovl_touch_parents(struct dsfs_stack *s, const struct loc *from,
		       const struct loc *to, int changed)
{
	const char *fs = strrchr(from->key, '/'), *ts = strrchr(to->key, '/');

	ovl_touch_parent(s, from, changed);
	if (!fs || !ts || fs - from->key != ts - to->key ||
	    memcmp(from->key, to->key, (size_t)(fs - from->key)) != 0)
		ovl_touch_parent(s, to, changed);
}

int ovl_tree_time(struct dsfs_stack *s, enum dsfs_view view, int layer,
		  enum dsfs_tree tree, struct timespec *t)
{
	int v = view == VIEW_MERGED ? DSFS_NLAYERS : layer;
	int rc = -ENOENT;

	if (view != VIEW_MERGED && (layer < 0 || layer >= DSFS_NLAYERS))
		return -EINVAL;
	pthread_rwlock_rdlock(&s->lock);
	*t = s->tree_time[v][tree_slot(tree)];
	if (t->tv_sec || t->tv_nsec)
		rc = 0;
	pthread_rwlock_unlock(&s->lock);
	return rc;
}
