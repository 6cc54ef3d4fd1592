/*
 * test_entry.c - one value by its mount path (entry.c): how paths resolve
 * to keys and views, what a commit would replace and add (the bytes a
 * reservation counts), permission, and commits that validate, make
 * missing directories and say why they refuse.  Against a stack of three
 * in-memory layers, the factory one read-only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsfs.h"
#include "entry.h"
#include "tap.h"

static struct dsfs_stack stack;

static int set(const char *path, const char *value, char *why, size_t size)
{
	const char *reason;
	struct entry e;
	int rc;

	rc = entry_resolve(&stack, path, &e, &reason);
	if (rc)
		return rc;
	return entry_commit(&stack, &e, value, strlen(value), 1000, 1000, why,
			    size);
}

/* The value at path, or an errno's name. */
static const char *get(const char *path)
{
	static char out[256];
	const char *reason;
	struct entry e;
	size_t len;
	char *data;
	int rc;

	rc = entry_resolve(&stack, path, &e, &reason);
	if (rc == 0)
		rc = entry_read(&stack, &e, &data, &len);
	if (rc) {
		snprintf(out, sizeof(out), "%s", strerrorname_np(-rc));
		return out;
	}
	snprintf(out, sizeof(out), "%.*s", (int)len, data);
	free(data);
	return out;
}

int main(void)
{
	struct dsfs_attr a = {.kind = DSFS_FILE, .mode = 0644, .uid = 7};
	char why[512];
	const char *reason;
	struct entry e;

	plan_no_plan();
	if (ovl_stack_init(&stack) != 0 ||
	    layer_mem_open(1 << 20, &stack.layer[L_EPHEMERAL]) != 0 ||
	    layer_mem_open(4096, &stack.layer[L_RUNTIME]) != 0 ||
	    layer_mem_open(1 << 20, &stack.layer[L_FACTORY]) != 0)
		return 1;
	layer_commit(stack.layer[L_FACTORY], "kv/fx", &a, "1", 1, NULL);
	layer_set_readonly(stack.layer[L_FACTORY]);

	/* Paths. */
	is_int(entry_resolve(&stack, "kv/app/x", &e, &reason), 0, "kv/app/x");
	is_str(e.loc.key, "kv/app/x", "its key");
	is_int(e.missing, 1, "kv/app is to be made");
	is_int((int)e.names, 4, "names a commit adds: app, x");
	is_int(e.layer, L_RUNTIME, "a new entry goes to runtime");
	is_int(entry_resolve(&stack, "devices/hub/t", &e, &reason), 0,
	       "devices/hub/t");
	is_str(e.loc.key, "kv/__hub/t", "is kv/__hub/t");
	is_int(entry_resolve(&stack, "ephemeral/images/i", &e, &reason), 0,
	       "ephemeral/images/i");
	ok(e.loc.view == VIEW_LAYER && e.layer == L_EPHEMERAL &&
		   e.loc.tree == TREE_IMAGES,
	   "the ephemeral layer's images tree");
	is_int(entry_resolve(&stack, "factory/kv/fx", &e, &reason), 0,
	       "factory/kv/fx resolves");
	is_int(e.layer, -EROFS, "but cannot be written");
	is_int(entry_resolve(&stack, "kv/fx", &e, &reason), 0, "kv/fx");
	ok(e.exists && e.found.layer == L_FACTORY && e.frees == 0 &&
		   e.names == 2,
	   "found in factory: a commit adds its name, frees nothing");
	is_int(entry_resolve(&stack, "/kv/x", &e, &reason), -EINVAL,
	       "a leading / is refused");
	is_int(entry_resolve(&stack, "kv//x", &e, &reason), -EINVAL, "//");
	is_int(entry_resolve(&stack, "kv/x/", &e, &reason), -EINVAL,
	       "a trailing /");
	is_int(entry_resolve(&stack, "kv/../x", &e, &reason), -EINVAL, "..");
	is_int(entry_resolve(&stack, "kv", &e, &reason), -EISDIR,
	       "a tree root");
	is_int(entry_resolve(&stack, "devices/hub", &e, &reason), -EISDIR,
	       "a device's directory");
	is_int(entry_resolve(&stack, "other/x", &e, &reason), -EINVAL,
	       "an unknown tree");

	/* Commits. */
	is_int(set("kv/app/x", "{\"n\": 1}", why, sizeof(why)), 0,
	       "set kv/app/x, making kv/app");
	is_str(get("kv/app/x"), "{\"n\": 1}", "read back");
	is_int(entry_resolve(&stack, "kv/app/x", &e, &reason), 0,
	       "kv/app/x again");
	ok(e.exists && e.frees == 8 && e.names == 0 && e.found.attr.uid == 1000,
	   "now replaces its 8 bytes, owned by the setter");
	is_int(set("kv/app/x", "{\"n\": 1,}", why, sizeof(why)), -EINVAL,
	       "a trailing comma is refused");
	is_str(why, "unexpected '}' where a key should be at byte 8",
	       "with the byte");
	is_int(set("kv/app/x", "[1, ", why, sizeof(why)), -EINVAL,
	       "incomplete JSON is refused");
	is_str(why, "incomplete JSON at end of file (1 open), after byte 4",
	       "with where it ended");
	is_int(set("images/i", "hello", why, sizeof(why)), -EINVAL,
	       "not an image");
	is_str(why,
	       "not a PNG, JPEG, GIF, BMP or WebP image (byte 0); it starts "
	       "with 68 65 6c 6c 6f",
	       "with its first bytes");
	{
		char big[5000];

		memset(big, '1', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		is_int(set("kv/big", big, why, sizeof(why)), -ENOSPC,
		       "over the runtime budget");
		ok(strstr(why, "the runtime layer's budget of 4096 bytes") !=
			   NULL,
		   "with the budget: %s", why);
	}
	is_int(set("factory/kv/fx", "2", why, sizeof(why)), -EROFS,
	       "factory/ is read-only");
	is_str(get("kv/app/x"), "{\"n\": 1}", "every refusal kept the value");
	is_str(get("kv/none"), "ENOENT", "a missing value");

	/* Permission, as default_permissions would judge it. */
	is_int(entry_resolve(&stack, "kv/app/x", &e, &reason), 0, "kv/app/x");
	is_int(entry_may_write(&e, 1000, 1000, 0, 0), 0, "its owner may");
	is_int(entry_may_write(&e, 2000, 2000, 0, 0), -EACCES,
	       "others may not (0644)");
	is_int(entry_may_write(&e, 0, 0, 0, 0), 0, "root may");
	is_int(entry_resolve(&stack, "kv/new", &e, &reason), 0, "kv/new");
	is_int(entry_may_write(&e, 2000, 2000, 2000, 2000), 0,
	       "in kv/, the store's owner may create");
	is_int(entry_may_write(&e, 3000, 3000, 2000, 2000), -EACCES,
	       "another user may not");

	ovl_stack_destroy(&stack);
	return done_testing();
}
