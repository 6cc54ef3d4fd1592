/*
 * overlay_hold.c - layers and blobs held by readers that stream an image
 * without the stack's lock: a pin of the blob in its layer, and a count
 * of readers per layer, so that a factory layer swapped out by an install
 * while read is closed by its last reader rather than under it.
 *
 * Like overlay.c, this file knows layers only through layer.h.
 */
#include "dsfs.h"

#include <errno.h>
#include <stdlib.h>

/* Count one more reader of l.  Called with s->lock held, so l is in the
 * stack. */
static int hold_layer(struct dsfs_stack *s, struct dsfs_layer *l)
{
	struct layer_hold *h;
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&s->holds_lock);
	for (i = 0; i < s->nholds; i++) {
		if (s->holds[i].layer == l && !s->holds[i].retired) {
			s->holds[i].count++;
			goto out;
		}
	}
	h = realloc(s->holds, (s->nholds + 1) * sizeof(*h));
	if (!h) {
		rc = -ENOMEM;
		goto out;
	}
	s->holds = h;
	s->holds[s->nholds++] = (struct layer_hold){l, 1, false};
out:
	pthread_mutex_unlock(&s->holds_lock);
	return rc;
}

static void release_layer(struct dsfs_stack *s, struct dsfs_layer *l)
{
	struct dsfs_layer *close_me = NULL;
	size_t i;

	pthread_mutex_lock(&s->holds_lock);
	for (i = 0; i < s->nholds; i++) {
		if (s->holds[i].layer != l)
			continue;
		if (--s->holds[i].count == 0) {
			if (s->holds[i].retired)
				close_me = l;
			s->holds[i] = s->holds[--s->nholds];
		}
		break;
	}
	pthread_mutex_unlock(&s->holds_lock);
	layer_close(close_me);
}

int ovl_swap_factory(struct dsfs_stack *s, struct dsfs_layer *fresh)
{
	struct dsfs_layer *old;
	bool held = false;
	size_t i;

	ovl_lock_for_change(s, NULL);
	old = s->layer[L_FACTORY];
	s->layer[L_FACTORY] = fresh;
	pthread_mutex_lock(&s->holds_lock);
	for (i = 0; i < s->nholds; i++) {
		if (s->holds[i].layer == old) {
			s->holds[i].retired = true;
			held = true;
		}
	}
	pthread_mutex_unlock(&s->holds_lock);
	pthread_rwlock_unlock(&s->lock);
	if (!held)
		layer_close(old);
	return 0;
}

/* Pin the blob and hold its layer, for a reader that streams it. */
static int hold_blob(struct dsfs_stack *s, struct dsfs_layer *l,
		     const char *token)
{
	int rc = layer_pin_blob(l, token);

	if (rc)
		return rc;
	rc = hold_layer(s, l);
	if (rc)
		layer_unpin_blob(l, token);
	return rc;
}

int ovl_open_image(struct dsfs_stack *s, const struct loc *l, struct found *f,
		   struct dsfs_layer **held)
{
	int rc;

	*held = NULL;
	pthread_rwlock_rdlock(&s->lock);
	rc = ovl_lookup_locked(s, l, f);
	if (rc == 0 && f->attr.kind == DSFS_DIR)
		rc = -EISDIR;
	if (rc == 0 && f->attr.token[0]) {
		rc = hold_blob(s, s->layer[f->layer], f->attr.token);
		if (rc == 0)
			*held = s->layer[f->layer];
	}
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

static int find_blob_locked(struct dsfs_stack *s, const char *token, int *layer,
			    uint64_t *size)
{
	int i, rc = -ENOENT;

	for (i = 0; i < DSFS_NLAYERS; i++) {
		rc = layer_stat_blob(s->layer[i], token, size);
		if (rc != -ENOENT) {
			*layer = i;
			break;
		}
	}
	return rc;
}

int ovl_find_blob(struct dsfs_stack *s, const char *token, int *layer,
		  uint64_t *size)
{
	int rc;

	pthread_rwlock_rdlock(&s->lock);
	rc = find_blob_locked(s, token, layer, size);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int ovl_open_blob(struct dsfs_stack *s, const char *token, uint64_t *size,
		  struct dsfs_layer **held)
{
	int layer, rc;

	*held = NULL;
	pthread_rwlock_rdlock(&s->lock);
	rc = find_blob_locked(s, token, &layer, size);
	if (rc == 0)
		rc = hold_blob(s, s->layer[layer], token);
	if (rc == 0)
		*held = s->layer[layer];
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

void ovl_release_image(struct dsfs_stack *s, struct dsfs_layer *held,
		       const char *token)
{
	if (!held)
		return;
	layer_unpin_blob(held, token);
	release_layer(s, held);
}
