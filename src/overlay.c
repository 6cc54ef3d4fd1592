/*
 * overlay.c - one view of three layers: resolution, copy-up and whiteouts
 * (the merged listings are listing.c's).
 *
 * The stack is an array, upper layer first.  A lookup through a merged tree
 * is one loop down the stack in which "not here" continues and a whiteout
 * stops; an opaque directory lowers the limit its children are looked up to.
 * A change through a merged tree goes to the layer where the entry was found
 * if that layer is writable, else to runtime, after copying up the parent
 * directories there.  A removal takes the entry out of the writable layers
 * and, if the factory layer still has it, leaves a whiteout in runtime:
 * whiteouts live only in runtime, because only the factory layer is below
 * it and the ephemeral layer is never covered.
 *
 * A loc in the view of one layer (VIEW_LAYER) touches that layer alone.
 *
 * This file knows layers only through layer.h: nothing here depends on how
 * a layer stores its entries.
 */
#include "dsfs.h"
#include "hash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A lookup in layer ly, fetching the value with it if data is not NULL
 * (layer_fetch()). */
static int look(struct dsfs_layer *ly, const char *key, struct dsfs_attr *a,
		char **data, size_t *len)
{
	return data ? layer_fetch(ly, key, a, data, len) :
		      layer_lookup(ly, key, a);
}

/* ovl_lookup_locked(), and with data (not NULL) the value of the file it
 * finds where that layer gives it with the lookup (*data NULL if not). */
static int lookup_layers(struct dsfs_stack *s, const struct loc *l,
			 struct found *f, char **data, size_t *len)
{
	int i, rc;

	if (l->view == VIEW_LAYER) {
		rc = look(s->layer[l->layer], l->key, &f->attr, data, len);
		if (rc == 0 && f->attr.kind == DSFS_WHITEOUT)
			rc = -ENOENT;
		f->layer = l->layer;
		f->limit = l->layer;
		return rc == -ENOTDIR ? -ENOENT : rc;
	}
	for (i = 0; i <= l->limit && i < DSFS_NLAYERS; i++) {
		rc = look(s->layer[i], l->key, &f->attr, data, len);
		if (rc == -ENOENT || rc == -ENOTDIR)
			continue;
		if (rc < 0)
			return rc;
		if (f->attr.kind == DSFS_WHITEOUT)
			return -ENOENT;
		f->layer = i;
		f->limit = f->attr.kind == DSFS_DIR && f->attr.opaque ?
				   i :
				   l->limit;
		return 0;
	}
	return -ENOENT;
}

int ovl_lookup_locked(struct dsfs_stack *s, const struct loc *l,
		      struct found *f)
{
	return lookup_layers(s, l, f, NULL, NULL);
}

/* True if layer i holds key as something other than a whiteout. */
static bool layer_has(struct dsfs_stack *s, int i, const char *key,
		      enum dsfs_kind *kind)
{
	struct dsfs_attr a;

	if (layer_lookup(s->layer[i], key, &a) != 0 || a.kind == DSFS_WHITEOUT)
		return false;
	if (kind)
		*kind = a.kind;
	return true;
}

/* The slot of changed_at[] that stands for the directory holding key
 * ("kv/a/b" -> "kv/a"). */
static size_t change_slot(const char *key, size_t len)
{
	return (size_t)(dsfs_hash(0, key, len) % DSFS_CHANGE_SLOTS);
}

static size_t parent_len(const char *key)
{
	const char *slash = strrchr(key, '/');

	return slash ? (size_t)(slash - key) : 0;
}

/* A change to key (NULL: to anything, as a factory install is) is about
 * to be made: listings of its directory taken before it are out of date. */
void ovl_note_file_change(struct dsfs_stack *s, const char *key)
{
	if (!key)
		s->all_changed_at = s->changes;
	else
		s->changed_at[change_slot(key, parent_len(key))] = s->changes;
}

void ovl_note_change(struct dsfs_stack *s, const char *key)
{
	ovl_note_file_change(s, key);
	if (key)
		s->subdirs_changed_at[change_slot(key, parent_len(key))] =
			s->changes;
}

/* Every change takes the lock exclusive through here, so that listings
 * can tell whether they are still what the store holds. */
void ovl_lock_for_file_change(struct dsfs_stack *s, const char *key)
{
	pthread_rwlock_wrlock(&s->lock);
	s->changes++;
	ovl_note_file_change(s, key);
}

void ovl_lock_for_change(struct dsfs_stack *s, const char *key)
{
	ovl_lock_for_file_change(s, key);
	ovl_note_change(s, key);
}

void ovl_changed_elsewhere(struct dsfs_stack *s, const char *key)
{
	ovl_lock_for_change(s, key);
	pthread_rwlock_unlock(&s->lock);
}

bool ovl_changed_since(struct dsfs_stack *s, const char *dirkey, uint64_t since)
{
	bool changed;

	pthread_rwlock_rdlock(&s->lock);
	changed = s->all_changed_at > since ||
		  s->changed_at[change_slot(dirkey, strlen(dirkey))] > since;
	pthread_rwlock_unlock(&s->lock);
	return changed;
}

bool ovl_subdirs_changed_since(struct dsfs_stack *s, const char *dirkey,
			       uint64_t since)
{
	bool changed;

	pthread_rwlock_rdlock(&s->lock);
	changed = s->all_changed_at > since ||
		  s->subdirs_changed_at[change_slot(dirkey, strlen(dirkey))] >
			  since;
	pthread_rwlock_unlock(&s->lock);
	return changed;
}

/* True if a layer below `above`, down to limit, holds key. */
static bool lower_has(struct dsfs_stack *s, const struct loc *l, int above)
{
	int i;

	for (i = above + 1; i <= l->limit && i < DSFS_NLAYERS; i++)
		if (layer_has(s, i, l->key, NULL))
			return true;
	return false;
}

int ovl_lookup(struct dsfs_stack *s, const struct loc *l, struct found *f)
{
	int rc;

	pthread_rwlock_rdlock(&s->lock);
	rc = ovl_lookup_locked(s, l, f);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

ssize_t ovl_read(struct dsfs_stack *s, const struct found *f, const char *key,
		 uint64_t off, void *buf, size_t len)
{
	ssize_t rc;

	pthread_rwlock_rdlock(&s->lock);
	rc = layer_read(s->layer[f->layer], key, off, buf, len);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

/* Read the whole value of an entry found by lookup_locked into a new
 * buffer owned by the caller. */
static int read_value_locked(struct dsfs_stack *s, const char *key,
			     const struct found *f, char **data, size_t *len)
{
	size_t size = f->attr.size;
	char *buf = malloc(size ? size : 1);
	ssize_t got;

	if (!buf)
		return -ENOMEM;
	got = size ? layer_read(s->layer[f->layer], key, 0, buf, size) : 0;
	if (got < 0) {
		free(buf);
		return (int)got;
	}
	*data = buf;
	*len = (size_t)got;
	return 0;
}

int ovl_read_all(struct dsfs_stack *s, const struct loc *l, struct found *f,
		 char **data, size_t *len)
{
	char *got = NULL;
	size_t glen = 0;
	int rc;

	pthread_rwlock_rdlock(&s->lock);
	rc = lookup_layers(s, l, f, &got, &glen);
	if (rc == 0 && f->attr.kind == DSFS_DIR)
		rc = -EISDIR;
	if (rc == 0 && got) {
		*data = got; /* fetched with its attributes */
		*len = glen;
		got = NULL;
	} else if (rc == 0) {
		rc = read_value_locked(s, l->key, f, data, len);
	}
	pthread_rwlock_unlock(&s->lock);
	free(got);
	return rc;
}

/* The layer a change to l goes to, given where the entry was found (f may
 * be NULL for a new entry). */
static int target_layer(struct dsfs_stack *s, const struct loc *l,
			const struct found *f)
{
	if (l->view == VIEW_LAYER)
		return layer_readonly(s->layer[l->layer]) ? -EROFS : l->layer;
	if ((f && f->layer == L_EPHEMERAL) || (!f && scratch_loc(s, l)))
		return L_EPHEMERAL; /* scratch files never reach the store */
	return L_RUNTIME;
}

/*
 * Make every ancestor directory of l->key exist in layer t, copying the
 * attributes of the directory the merged view shows.  A whiteout in t
 * becomes an opaque directory: what it hid stays hidden.
 */
static int copy_up_parents(struct dsfs_stack *s, const struct loc *l, int t)
{
	struct loc dir;
	struct found f;
	struct dsfs_attr a;
	char *slash;
	int rc;

	if (l->view != VIEW_MERGED)
		return 0;
	dir = *l;
	dir.limit = L_FACTORY;
	/* Skip the tree root ("kv/", "images/"): it exists everywhere. */
	slash = strchr(dir.key, '/');
	while (slash && (slash = strchr(slash + 1, '/'))) {
		*slash = '\0';
		rc = layer_lookup(s->layer[t], dir.key, &a);
		if (rc == 0 && a.kind == DSFS_FILE)
			return -ENOTDIR;
		if (rc == 0 && a.kind == DSFS_DIR) {
			*slash = '/';
			continue;
		}
		if (rc != 0 && rc != -ENOENT)
			return rc;
		bool whiteout = rc == 0;

		rc = ovl_lookup_locked(s, &dir, &f);
		if (rc)
			return rc;
		if (f.attr.kind != DSFS_DIR)
			return -ENOTDIR;
		f.attr.opaque = whiteout;
		rc = layer_mkdir(s->layer[t], dir.key, &f.attr);
		if (rc)
			return rc;
		ovl_note_change(s, dir.key); /* the layer's own tree shows it */
		/* The loop condition made slash non-NULL; cppcheck reads the
		 * "slash &&" there as a sign that it may be NULL here. */
		/* cppcheck-suppress nullPointerRedundantCheck */
		*slash = '/';
	}
	return 0;
}

/* f for the entry whose attributes f->attr the change to layer t just
 * returned (a commit's or a create's: no lookup needed). */
static void found_in(const struct loc *l, int t, struct found *f)
{
	f->layer = t;
	f->limit = f->attr.kind == DSFS_DIR && f->attr.opaque ? t : l->limit;
	if (l->view == VIEW_LAYER)
		f->limit = l->layer;
}

static void fill_found(struct dsfs_stack *s, const struct loc *l, int t,
		       struct found *f)
{
	if (layer_lookup(s->layer[t], l->key, &f->attr) != 0)
		memset(&f->attr, 0, sizeof(f->attr));
	found_in(l, t, f);
}

/* Whether a new file at l can go to layer t without asking t first:
 * -EEXIST if a layer above t shows the name, 1 if t must be asked (a
 * layer below it has the name, which a whiteout in t may hide, or one
 * above has a whiteout, which may hide a file in t), else 0: only t can
 * hold the name, and layer_create() says -EEXIST if it does.  On a
 * database that is a round trip less for every create. */
static int new_in(struct dsfs_stack *s, const struct loc *l, int t)
{
	struct dsfs_attr a;
	int i, rc;

	if (l->view != VIEW_MERGED || t < 0 || t > l->limit)
		return 1;
	for (i = 0; i <= l->limit && i < DSFS_NLAYERS; i++) {
		if (i == t)
			continue;
		rc = layer_lookup(s->layer[i], l->key, &a);
		if (rc == -ENOENT || rc == -ENOTDIR)
			continue;
		if (rc < 0 || i > t || a.kind == DSFS_WHITEOUT)
			return 1;
		return -EEXIST;
	}
	return 0;
}

/* Whether the merged view at l cannot show what layer t holds there: t
 * is past l's limit (an opaque directory above), or a layer above t has a
 * whiteout at l. */
static bool hidden_in(struct dsfs_stack *s, const struct loc *l, int t)
{
	struct dsfs_attr a;
	int i;

	if (l->view != VIEW_MERGED)
		return false;
	if (t > l->limit)
		return true;
	for (i = 0; i < t; i++)
		if (layer_lookup(s->layer[i], l->key, &a) == 0 &&
		    a.kind == DSFS_WHITEOUT)
			return true;
	return false;
}

/* The common start of making a new name: it must not exist; returns the
 * layer it goes to.  For a file (asked not NULL), *asked tells whether
 * that layer was asked, or is left to find an existing file itself
 * (new_in()). */
static int begin_new(struct dsfs_stack *s, const struct loc *l, struct found *f,
		     bool *asked)
{
	int rc, t;

	if (asked) {
		t = target_layer(s, l, NULL);
		rc = new_in(s, l, t);
		*asked = rc == 1;
		if (rc == 0)
			return t;
		if (rc < 0)
			return rc;
	}
	rc = ovl_lookup_locked(s, l, f);
	if (rc == 0)
		return -EEXIST;
	if (rc != -ENOENT)
		return rc;
	return target_layer(s, l, NULL);
}

/* A change to l in layer t failed with rc: should it be made again after
 * copying up l's parents?  Most changes go to a directory that t holds
 * already, so the parents are looked up in t (a round trip each, on a
 * database) only when the layer found one missing (-ENOENT), once. */
static bool copy_up_again(struct dsfs_stack *s, const struct loc *l, int t,
			  int *rc, int *tries)
{
	if (*rc != -ENOENT || l->view != VIEW_MERGED || (*tries)++)
		return false;
	*rc = copy_up_parents(s, l, t);
	return *rc == 0;
}

/* a->inherit_group has layer t give the new entry at l its parent's group
 * there (layer.h).  In a merged tree the parent the user sees may be a
 * layer above t's instead: the ephemeral one's, which is local, so
 * asking it costs nothing; then its word is final, and t is not asked. */
static void group_from_above(struct dsfs_stack *s, const struct loc *l, int t,
			     struct dsfs_attr *a)
{
	struct dsfs_attr p;
	char key[DSFS_KEY_MAX];
	const char *slash;

	if (l->view != VIEW_MERGED || t != L_RUNTIME)
		return;
	slash = strrchr(l->key, '/');
	if (!slash)
		return;
	/* The parent's key only: a key is far shorter than its buffer. */
	memcpy(key, l->key, (size_t)(slash - l->key));
	key[slash - l->key] = '\0';
	if (layer_lookup(s->layer[L_EPHEMERAL], key, &p) == 0) {
		layer_inherit_group(a, a, &p);
		a->inherit_group = false;
	}
}

/* create (kind DSFS_FILE, empty) or mkdir (DSFS_DIR) of a new name. */
static int make_new(struct dsfs_stack *s, const struct loc *l,
		    const struct dsfs_attr *a, enum dsfs_kind kind,
		    struct found *f)
{
	struct dsfs_attr na = *a, cur;
	int t, rc, tries = 0;
	bool asked = true;

	/* A new file in a layer's own tree may hide a lower layer's
	 * directory from the merged one; in a merged tree, nothing had the
	 * name. */
	if (kind == DSFS_FILE && l->view == VIEW_MERGED)
		ovl_lock_for_file_change(s, l->key);
	else
		ovl_lock_for_change(s, l->key);
	rc = t = begin_new(s, l, f, kind == DSFS_FILE ? &asked : NULL);
	if (t < 0)
		goto out;
	na.kind = kind;
	na.size = 0;
	if (na.inherit_group)
		group_from_above(s, l, t, &na);
	do {
		if (kind == DSFS_FILE) {
			/* Durable with its value, committed at its close. */
			rc = layer_create(s->layer[t], l->key, &na, &f->attr);
			if (rc == 1)
				rc = 0; /* made with its value at the close */
			/* A directory made at the name meanwhile. */
			if (rc == -EISDIR && !asked)
				rc = -EEXIST;
			/* A file the merged view does not show is replaced,
			 * as a commit does; one made at the name since it was
			 * looked up stays, and the create is EEXIST. */
			if (rc == -EEXIST && asked && hidden_in(s, l, t))
				rc = layer_commit(s->layer[t], l->key, &na, "",
						  0, &f->attr);
			continue;
		}
		/* Made again where a lower layer's directory was removed:
		 * keep what that directory held hidden. */
		na.opaque = l->view == VIEW_MERGED &&
			    layer_lookup(s->layer[t], l->key, &cur) == 0 &&
			    cur.kind == DSFS_WHITEOUT;
		rc = layer_mkdir(s->layer[t], l->key, &na);
	} while (copy_up_again(s, l, t, &rc, &tries));
	if (rc == 0 && kind == DSFS_FILE)
		found_in(l, t, f);
	else if (rc == 0)
		fill_found(s, l, t, f);
	if (rc == 0)
		ovl_touch_parent(s, l, t);
out:
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int ovl_create(struct dsfs_stack *s, const struct loc *l,
	       const struct dsfs_attr *a, struct found *f)
{
	return make_new(s, l, a, DSFS_FILE, f);
}

int ovl_mkdir(struct dsfs_stack *s, const struct loc *l,
	      const struct dsfs_attr *a, struct found *f)
{
	return make_new(s, l, a, DSFS_DIR, f);
}

/* The layer in which layer_replace() may change the file at l without
 * its lookup: the one a lookup would look in first (no layer above the
 * runtime has the name), or the tree's own; -1 if none. */
static int replace_layer(struct dsfs_stack *s, const struct loc *l)
{
	struct dsfs_attr a;
	int rc;

	if (l->view == VIEW_LAYER)
		return l->layer;
	if (l->limit < L_RUNTIME || scratch_loc(s, l))
		return -1;
	rc = layer_lookup(s->layer[L_EPHEMERAL], l->key, &a);
	return rc == -ENOENT || rc == -ENOTDIR ? L_RUNTIME : -1;
}

static int commit_locked(struct dsfs_stack *s, const struct loc *l,
			 const struct dsfs_attr *a, const void *data,
			 size_t len, struct found *f)
{
	struct dsfs_attr na = *a;
	struct found cur;
	bool fresh;
	int t, rc, tries = 0;

	/* A file that stays where it is keeps its mode, owner and version
	 * line: a layer that can do that itself is not asked first. */
	t = replace_layer(s, l);
	rc = t < 0 ? -ENOENT :
		     layer_replace(s->layer[t], l->key, a, data, len, &f->attr);
	if (rc == 0)
		found_in(l, t, f);
	if (rc != -ENOENT)
		return rc;
	rc = ovl_lookup_locked(s, l, &cur);
	if (rc == 0 && cur.attr.kind == DSFS_DIR)
		return -EISDIR;
	if (rc && rc != -ENOENT)
		return rc;
	fresh = rc != 0;
	t = target_layer(s, l, rc == 0 ? &cur : NULL);
	if (t < 0)
		return t;
	if (rc == 0) {
		/* The value changes; who owns it and its mode do not, and its
		 * version goes on from where it was, in whatever layer. */
		na.mode = cur.attr.mode;
		na.uid = cur.attr.uid;
		na.gid = cur.attr.gid;
		na.version = cur.attr.version;
	} else {
		na.version = 0;
	}
	na.kind = DSFS_FILE;
	do
		rc = layer_commit(s->layer[t], l->key, &na, data, len,
				  &f->attr);
	while (copy_up_again(s, l, t, &rc, &tries));
	if (rc == 0 && fresh && l->view == VIEW_LAYER)
		ovl_note_change(s, l->key); /* as make_new() says */
	if (rc == 0 && fresh)
		ovl_touch_parent(s, l, t); /* a new name */
	if (rc == 0)
		found_in(l, t, f);
	return rc;
}

int ovl_commit(struct dsfs_stack *s, const struct loc *l,
	       const struct dsfs_attr *a, const void *data, size_t len,
	       struct found *f)
{
	int rc;

	ovl_lock_for_file_change(s, l->key);
	rc = commit_locked(s, l, a, data, len, f);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

/* Take key out of the merged view: out of runtime and ephemeral, and
 * covered by a whiteout in runtime if the factory layer still shows it. */
static int remove_merged(struct dsfs_stack *s, const struct loc *l)
{
	int rc;

	if (lower_has(s, l, L_RUNTIME)) {
		rc = copy_up_parents(s, l, L_RUNTIME);
		if (rc == 0)
			rc = layer_whiteout(s->layer[L_RUNTIME], l->key);
	} else {
		rc = layer_remove(s->layer[L_RUNTIME], l->key);
	}
	if (rc && rc != -ENOENT && rc != -ENOTDIR)
		return rc;
	rc = layer_remove(s->layer[L_EPHEMERAL], l->key);
	return rc == -ENOENT || rc == -ENOTDIR ? 0 : rc;
}

/* A directory seen through l is empty (its own listing, with its own
 * limit). */
static int dir_empty(struct dsfs_stack *s, const struct loc *l,
		     const struct found *f)
{
	struct listing ls = {0};
	struct loc dir = *l;
	int rc;

	dir.limit = f->limit;
	rc = listing_gather(s, &dir, false, &ls);
	if (rc == 0 && ls.count > 0)
		rc = -ENOTEMPTY;
	listing_free(&ls);
	return rc;
}

/* The layer from which layer_take_file() may unlink the file at l
 * without its lookup: the tree's own, or runtime when no other layer has
 * the name (nothing to hide with a whiteout, nothing above to remove
 * too); -1 if none, or if the layer has no such shortcut. */
static int take_layer(struct dsfs_stack *s, const struct loc *l)
{
	int t = l->view == VIEW_LAYER ? l->layer : L_RUNTIME;

	if (!s->layer[t]->takes_files)
		return -1;
	if (l->view == VIEW_LAYER || new_in(s, l, L_RUNTIME) == 0)
		return t;
	return -1;
}

/* unlink (dir false) or rmdir (dir true): through a layer's own tree the
 * entry goes from that layer alone (the wrapper refuses a read-only one);
 * through a merged tree, from the whole view. */
static int remove_entry(struct dsfs_stack *s, const struct loc *l, bool dir,
			struct found *gone)
{
	struct found f;
	int t, rc;

	ovl_lock_for_file_change(s, l->key);
	t = dir ? -1 : take_layer(s, l);
	rc = t < 0 ? -ENOENT : layer_take_file(s->layer[t], l->key, &f.attr);
	if (rc == 0) {
		found_in(l, t, &f);
		if (l->view == VIEW_LAYER)
			ovl_note_change(s, l->key);
		goto removed;
	}
	if (rc != -ENOENT)
		goto out;
	rc = ovl_lookup_locked(s, l, &f);
	if (rc)
		goto out;
	/* A file that goes from a merged tree was the top one, over nothing
	 * or over what a whiteout now hides; one in ephemeral may have hidden
	 * runtime's directory, which removing it from runtime changes. */
	if (dir || l->view == VIEW_LAYER || f.layer == L_EPHEMERAL)
		ovl_note_change(s, l->key);
	if (dir != (f.attr.kind == DSFS_DIR)) {
		rc = dir ? -ENOTDIR : -EISDIR;
		goto out;
	}
	if (dir) {
		rc = dir_empty(s, l, &f);
		if (rc)
			goto out;
	}
	if (l->view == VIEW_LAYER)
		rc = layer_remove(s->layer[l->layer], l->key);
	else
		rc = remove_merged(s, l);
removed:
	if (rc == 0)
		ovl_touch_parent(s, l,
				 l->view == VIEW_LAYER ? l->layer : L_RUNTIME);
	if (rc == 0 && gone)
		*gone = f;
out:
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int ovl_unlink(struct dsfs_stack *s, const struct loc *l, struct found *gone)
{
	return remove_entry(s, l, false, gone);
}

int ovl_rmdir(struct dsfs_stack *s, const struct loc *l, struct found *gone)
{
	return remove_entry(s, l, true, gone);
}

static bool is_below(const char *key, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(key, dir, n) == 0 && key[n] == '/';
}

static int rename_merged(struct dsfs_stack *s, const struct loc *from,
			 const struct loc *to, struct found *fs,
			 bool dst_exists, struct found *fd)
{
	char *data = NULL;
	size_t len = 0;
	int t, rc;

	if (fs->attr.kind == DSFS_DIR &&
	    (fs->layer == L_FACTORY || lower_has(s, from, fs->layer)))
		return -EXDEV; /* a merged directory: mv copies it */
	if (dst_exists && fd->attr.kind == DSFS_DIR &&
	    lower_has(s, to, fs->layer == L_FACTORY ? L_RUNTIME : fs->layer))
		return -EXDEV;
	if (fs->layer == L_FACTORY) {
		/* Copy the file up first; the rename then happens in
		 * runtime, leaving a whiteout over the factory's name. */
		rc = read_value_locked(s, from->key, fs, &data, &len);
		if (rc)
			return rc;
		rc = copy_up_parents(s, from, L_RUNTIME);
		if (rc == 0)
			rc = layer_commit(s->layer[L_RUNTIME], from->key,
					  &fs->attr, data, len, NULL);
		free(data);
		if (rc)
			return rc;
		fs->layer = L_RUNTIME;
	}
	t = fs->layer;
	if (dst_exists && fd->layer < t) {
		rc = layer_remove(s->layer[fd->layer], to->key);
		if (rc)
			return rc;
	}
	rc = copy_up_parents(s, to, t);
	if (rc)
		return rc;
	if (t == L_RUNTIME)
		return layer_rename(
			s->layer[t], from->key, to->key,
			lower_has(s, from, t) ? DSFS_RENAME_WHITEOUT : 0);
	rc = layer_rename(s->layer[t], from->key, to->key, 0);
	if (rc == 0 && lower_has(s, from, t)) {
		rc = copy_up_parents(s, from, L_RUNTIME);
		if (rc == 0)
			rc = layer_whiteout(s->layer[L_RUNTIME], from->key);
	}
	return rc;
}

/* A rename that leaves every layer's subdirectories as they were and the
 * merged tree's too: a file of runtime or factory in a merged tree, over
 * nothing or over such a file.  (A layer's own tree may uncover a lower
 * layer's directory; ephemeral's file may have hidden runtime's.) */
static bool file_rename(const struct loc *from, const struct found *fs,
			const struct found *fd)
{
	if (from->view != VIEW_MERGED || fs->attr.kind == DSFS_DIR ||
	    fs->layer == L_EPHEMERAL)
		return false;
	return !fd || (fd->attr.kind != DSFS_DIR && fd->layer != L_EPHEMERAL);
}

int ovl_rename(struct dsfs_stack *s, const struct loc *from,
	       const struct loc *to, unsigned flags)
{
	struct found fs, fd;
	bool dst_exists;
	int rc;

	if (from->view != to->view || from->tree != to->tree ||
	    (from->view == VIEW_LAYER && from->layer != to->layer))
		return -EXDEV;
	ovl_lock_for_file_change(s, from->key);
	ovl_note_file_change(s, to->key);
	rc = ovl_lookup_locked(s, from, &fs);
	if (rc)
		goto out;
	rc = ovl_lookup_locked(s, to, &fd);
	if (rc && rc != -ENOENT)
		goto out;
	dst_exists = rc == 0;
	if (!file_rename(from, &fs, dst_exists ? &fd : NULL)) {
		ovl_note_change(s, from->key);
		ovl_note_change(s, to->key);
	}
	rc = 0;
	if (strcmp(from->key, to->key) == 0)
		goto out;
	if (is_below(to->key, from->key)) {
		rc = -EINVAL;
		goto out;
	}
	if (dst_exists) {
		if (flags & DSFS_RENAME_NOREPLACE)
			rc = -EEXIST;
		else if (fs.attr.kind == DSFS_DIR && fd.attr.kind != DSFS_DIR)
			rc = -ENOTDIR;
		else if (fs.attr.kind != DSFS_DIR && fd.attr.kind == DSFS_DIR)
			rc = -EISDIR;
		else if (fd.attr.kind == DSFS_DIR)
			rc = dir_empty(s, to, &fd);
		if (rc)
			goto out;
	}
	if (from->view == VIEW_LAYER)
		rc = layer_readonly(s->layer[from->layer]) ?
			     -EROFS :
			     layer_rename(s->layer[from->layer], from->key,
					  to->key, 0);
	else
		rc = rename_merged(s, from, to, &fs, dst_exists, &fd);
	if (rc == 0)
		ovl_touch_parents(s, from, to,
				  from->view == VIEW_LAYER ? from->layer :
							     fs.layer);
out:
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int ovl_setattr(struct dsfs_stack *s, const struct loc *l,
		const struct dsfs_attr *a, unsigned mask, struct found *f)
{
	struct found cur;
	char *data = NULL;
	size_t len = 0;
	int t, rc;

	ovl_lock_for_file_change(s, l->key);
	rc = ovl_lookup_locked(s, l, &cur);
	if (rc)
		goto out;
	rc = t = target_layer(s, l, &cur);
	if (t < 0)
		goto out;
	if (cur.layer != t && cur.attr.kind == DSFS_DIR)
		ovl_note_change(s, l->key); /* copied up: t gains it */
	if (cur.layer != t) {
		/* Found in the factory layer only: copy up, then change. */
		rc = copy_up_parents(s, l, t);
		if (rc)
			goto out;
		if (cur.attr.kind == DSFS_DIR) {
			cur.attr.opaque = false;
			rc = layer_mkdir(s->layer[t], l->key, &cur.attr);
		} else {
			rc = read_value_locked(s, l->key, &cur, &data, &len);
			if (rc == 0)
				rc = layer_commit(s->layer[t], l->key,
						  &cur.attr, data, len, NULL);
			free(data);
		}
		if (rc)
			goto out;
	}
	rc = layer_setattr(s->layer[t], l->key, a, mask);
	if (rc == 0)
		fill_found(s, l, t, f);
out:
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int ovl_list(struct dsfs_stack *s, const struct loc *l, bool devices,
	     struct listing *out)
{
	int rc;

	pthread_rwlock_rdlock(&s->lock);
	out->changes = s->changes;
	rc = listing_gather(s, l, devices, out);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int ovl_sync(struct dsfs_stack *s)
{
	int rc;

	pthread_rwlock_rdlock(&s->lock);
	rc = layer_sync(s->layer[L_RUNTIME]);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int ovl_usage(struct dsfs_stack *s, int layer, uint64_t *used, uint64_t *budget)
{
	int rc;

	pthread_rwlock_rdlock(&s->lock);
	rc = layer_usage(s->layer[layer], used, budget);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int ovl_room(struct dsfs_stack *s, int layer, uint64_t bytes)
{
	int rc;

	pthread_rwlock_rdlock(&s->lock);
	rc = layer_room(s->layer[layer], bytes);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int ovl_settle(struct dsfs_stack *s, int layer, const char *key)
{
	int rc;

	pthread_rwlock_rdlock(&s->lock);
	rc = layer_settle(s->layer[layer], key);
	pthread_rwlock_unlock(&s->lock);
	return rc < 0 ? rc : 0;
}

void ovl_admin_lock(struct dsfs_stack *s, bool change)
{
	if (change)
		ovl_lock_for_change(s, NULL);
	else
		pthread_rwlock_rdlock(&s->lock);
}

void ovl_admin_unlock(struct dsfs_stack *s)
{
	pthread_rwlock_unlock(&s->lock);
}

int ovl_factory_reset(struct dsfs_stack *s)
{
	int rc;

	ovl_lock_for_change(s, NULL);
	rc = layer_clear(s->layer[L_RUNTIME]);
	if (rc == 0)
		rc = layer_clear(s->layer[L_EPHEMERAL]);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int ovl_stack_init(struct dsfs_stack *s)
{
	memset(s, 0, sizeof(*s));
	if (pthread_rwlock_init(&s->lock, NULL) != 0)
		return -ENOMEM;
	if (pthread_mutex_init(&s->holds_lock, NULL) != 0) {
		pthread_rwlock_destroy(&s->lock);
		return -ENOMEM;
	}
	if (scratch_init(s) != 0) {
		ovl_stack_destroy(s);
		return -ENOMEM;
	}
	return 0;
}

/* Closes the layers, and the retired ones still held (their readers are
 * gone with the session). */
void ovl_stack_destroy(struct dsfs_stack *s)
{
	size_t i;

	for (i = 0; i < s->nholds; i++)
		if (s->holds[i].retired)
			layer_close(s->holds[i].layer);
	for (i = 0; i < DSFS_NLAYERS; i++)
		if (s->layer[i])
			layer_close(s->layer[i]);
	free(s->holds);
	scratch_destroy(s);
	pthread_mutex_destroy(&s->holds_lock);
	pthread_rwlock_destroy(&s->lock);
	memset(s, 0, sizeof(*s));
}
