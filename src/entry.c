/*
 * entry.c - one value by its path in the mount, through the overlay
 * (entry.h): resolving the path the way the mount's lookups would, the
 * permission an open for writing would need, and a commit validated the
 * way a write through the mount is.
 *
 * The walk looks each ancestor up with the limit its parent gives (an
 * opaque directory hides the layers below it), as inode.c's nodes carry
 * it; ancestors that do not exist yet are counted, and made by the commit.
 */
#include "entry.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "validate.h"

static const char *const layer_dirs[DSFS_NLAYERS] = {
	[L_EPHEMERAL] = "ephemeral",
	[L_RUNTIME] = "runtime",
	[L_FACTORY] = "factory",
};

/* The view and tree the first names of the path choose; *i is the index
 * of the first name inside the tree. */
static int parse_root(char **parts, size_t n, struct loc *l, size_t *i,
		      const char **why)
{
	size_t k;

	*i = 0;
	l->view = VIEW_MERGED;
	l->layer = 0;
	for (k = 0; k < DSFS_NLAYERS && n > 0; k++)
		if (strcmp(parts[0], layer_dirs[k]) == 0) {
			l->view = VIEW_LAYER;
			l->layer = (int)k;
			*i = 1;
		}
	if (*i >= n) {
		*why = "not under kv/, images/ or devices/";
		return -EINVAL;
	}
	if (strcmp(parts[*i], "kv") == 0)
		l->tree = TREE_KV;
	else if (strcmp(parts[*i], "images") == 0)
		l->tree = TREE_IMAGES;
	else if (strcmp(parts[*i], "devices") == 0)
		l->tree = TREE_DEVICES;
	else {
		*why = "not under kv/, images/ or devices/";
		return -EINVAL;
	}
	(*i)++;
	if (n - *i < (l->tree == TREE_DEVICES ? 2u : 1u)) {
		*why = "a directory, not a value";
		return -EISDIR;
	}
	return 0;
}

/* Split path into its names in copy (which it points into). */
static int split(const char *path, char *copy, char **parts, size_t *n,
		 const char **why)
{
	char *p, *slash;
	int rc;

	size_t len = strlen(path);

	if (len >= DSFS_KEY_MAX - 4)
		return -ENAMETOOLONG;
	if (!*path || path[0] == '/') {
		*why = "not a path inside the mount (such as kv/app/x)";
		return -EINVAL;
	}
	memcpy(copy, path, len + 1);
	*n = 0;
	for (p = copy; p; p = slash ? slash + 1 : NULL) {
		slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		rc = name_check(p);
		if (rc) {
			*why = *p ? "an invalid name (names.c: 1-255 bytes of "
				    "UTF-8, not . or ..)" :
				    "an empty name (// or a trailing /)";
			return rc == -ENAMETOOLONG ? rc : -EINVAL;
		}
		parts[(*n)++] = p;
	}
	return 0;
}

/* Walk the ancestors of e->loc.key below the tree root, setting the
 * limit each gives its children, e->dir, and what is missing. */
static int walk_ancestors(struct dsfs_stack *s, struct entry *e)
{
	struct loc dir = e->loc;
	char *slash = strchr(dir.key, '/'), *prev;
	struct found f;
	int rc;

	e->dir_is_root = true;
	for (prev = slash; (slash = strchr(slash + 1, '/')); prev = slash) {
		*slash = '\0';
		rc = ovl_lookup(s, &dir, &f);
		if (rc == -ENOENT) {
			e->missing_at = (size_t)(prev - dir.key);
			for (e->missing = 1; (slash = strchr(slash + 1, '/'));)
				e->missing++;
			break;
		}
		if (rc)
			return rc;
		if (f.attr.kind != DSFS_DIR)
			return -ENOTDIR;
		e->dir = f.attr;
		e->dir_is_root = false;
		dir.limit = f.limit;
		*slash = '/';
	}
	e->loc.limit = dir.limit;
	return 0;
}

int entry_resolve(struct dsfs_stack *s, const char *path, struct entry *e,
		  const char **why)
{
	char copy[DSFS_KEY_MAX], *parts[DSFS_KEY_MAX / 2];
	size_t n, i, pos;
	const char *last;
	int rc;

	*why = NULL;
	memset(e, 0, sizeof(*e));
	rc = split(path, copy, parts, &n, why);
	if (rc == 0)
		rc = parse_root(parts, n, &e->loc, &i, why);
	if (rc)
		return rc;
	pos = (size_t)snprintf(e->loc.key, sizeof(e->loc.key), "%s",
			       e->loc.tree == TREE_IMAGES ? "images" : "kv");
	for (last = NULL; i < n; i++) {
		bool device = e->loc.tree == TREE_DEVICES && !last;

		pos += (size_t)snprintf(e->loc.key + pos,
					sizeof(e->loc.key) - pos, "/%s%s",
					device ? "__" : "", parts[i]);
		if (pos >= sizeof(e->loc.key))
			return -ENAMETOOLONG;
		last = parts[i];
	}
	e->loc.limit = e->loc.view == VIEW_LAYER ? e->loc.layer : L_FACTORY;
	rc = walk_ancestors(s, e);
	if (rc == 0 && !e->missing) {
		rc = ovl_lookup(s, &e->loc, &e->found);
		e->exists = rc == 0;
		if (rc == -ENOENT)
			rc = 0;
	}
	if (rc)
		return rc;
	if (e->exists && e->found.attr.kind == DSFS_DIR) {
		*why = "a directory, not a value";
		return -EISDIR;
	}
	if (e->loc.view == VIEW_LAYER)
		e->layer = layer_readonly(s->layer[e->loc.layer]) ?
				   -EROFS :
				   e->loc.layer;
	else
		e->layer = e->exists && e->found.layer == L_EPHEMERAL ?
				   L_EPHEMERAL :
				   L_RUNTIME;
	if (e->exists && e->found.layer == e->layer) {
		e->frees = e->found.attr.size;
	} else if (e->missing) {
		/* The missing directories' names and the entry's: the tail
		 * of the key after key[missing_at], less its slashes. */
		e->names = strlen(e->loc.key) - e->missing_at - 1 - e->missing;
	} else {
		e->names = strlen(last);
	}
	return 0;
}

int entry_read(struct dsfs_stack *s, const struct entry *e, char **data,
	       size_t *len)
{
	struct found f;

	if (!e->exists)
		return -ENOENT;
	return ovl_read_all(s, &e->loc, &f, data, len);
}

int entry_may_write(const struct entry *e, uid_t uid, gid_t gid,
		    uid_t owner_uid, gid_t owner_gid)
{
	struct dsfs_attr root = {
		.uid = owner_uid, .gid = owner_gid, .mode = 0755};
	const struct dsfs_attr *a = e->exists ? &e->found.attr : &e->dir;
	uint32_t bit;

	if (e->layer < 0)
		return e->layer;
	if (uid == 0)
		return 0;
	if (!e->exists && e->dir_is_root)
		a = &root;
	if (uid == a->uid)
		bit = 0200;
	else if (gid == a->gid)
		bit = 0020;
	else
		bit = 0002;
	return (a->mode & bit) ? 0 : -EACCES;
}

const char *entry_head_reason(const char *why, const void *head, size_t n,
			      char *out, size_t size)
{
	const unsigned char *p = head;
	size_t len, i;

	len = (size_t)snprintf(out, size, "%s; it starts with", why);
	for (i = 0; i < n && i < 8 && len < size; i++)
		len += (size_t)snprintf(out + len, size - len, " %02x", p[i]);
	if (n == 0 && len < size)
		snprintf(out + len, size - len, " nothing");
	return out;
}

const char *entry_json_reason(const char *why, size_t len, char *out,
			      size_t size)
{
	if (strstr(why, "byte"))
		snprintf(out, size, "%s", why);
	else
		snprintf(out, size, "%s, after byte %zu", why, len);
	return out;
}

const char *entry_budget_reason(struct dsfs_stack *s, int layer, size_t len,
				char *out, size_t size)
{
	uint64_t used, budget;

	if (ovl_usage(s, layer, &used, &budget) != 0)
		return NULL;
	snprintf(out, size,
		 "the %s layer's budget of %llu bytes is full: %llu stored, "
		 "and this value is %zu bytes",
		 layer_dirs[layer], (unsigned long long)budget,
		 (unsigned long long)used, len);
	return out;
}

/* Make the directories the path needs (mkdir -p). */
static int make_missing(struct dsfs_stack *s, const struct entry *e,
			const struct dsfs_attr *a)
{
	struct loc dir = e->loc;
	struct dsfs_attr da = *a;
	char *slash = dir.key + e->missing_at;
	struct found f;
	int rc;

	da.kind = DSFS_DIR;
	da.mode = 0755;
	da.type[0] = da.token[0] = '\0';
	da.hash_token = false;
	while ((slash = strchr(slash + 1, '/'))) {
		*slash = '\0';
		rc = ovl_mkdir(s, &dir, &da, &f);
		if (rc && rc != -EEXIST)
			return rc;
		*slash = '/';
	}
	return 0;
}

int entry_commit(struct dsfs_stack *s, const struct entry *e, const void *data,
		 size_t len, uid_t uid, gid_t gid, char *why, size_t size)
{
	enum dsfs_content c = e->loc.tree == TREE_IMAGES ? DSFS_CONTENT_IMAGE :
							   DSFS_CONTENT_JSON;
	const char *type = NULL, *reason = NULL;
	struct dsfs_attr a;
	struct found f;
	int rc;

	why[0] = '\0';
	if (e->layer < 0)
		return e->layer;
	if (validate_buffer(c, data, len, &type, &reason) != 0) {
		reason = reason ? reason : "invalid content";
		if (c == DSFS_CONTENT_IMAGE)
			entry_head_reason(reason, data, len, why, size);
		else
			entry_json_reason(reason, len, why, size);
		return -EINVAL;
	}
	memset(&a, 0, sizeof(a));
	a.kind = DSFS_FILE;
	a.mode = 0644;
	a.uid = uid;
	a.gid = gid;
	clock_gettime(CLOCK_REALTIME, &a.ctime);
	a.atime = a.mtime = a.ctime;
	snprintf(a.type, sizeof(a.type), "%s", type);
	/* The layer names the bytes (layer.h), hashing while it writes. */
	a.hash_token = c == DSFS_CONTENT_IMAGE && len > 0;
	rc = e->missing ? make_missing(s, e, &a) : 0;
	if (rc == 0)
		rc = ovl_commit(s, &e->loc, &a, data, len, &f);
	if (rc == -ENOSPC)
		entry_budget_reason(s, e->layer, len, why, size);
	return rc;
}
