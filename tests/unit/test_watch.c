/*
 * test_watch.c - what dsfsctl watch's lines are made of (watch_event.c):
 * PATH filters (subtrees, devices as kv/__ID, one layer, malformed paths
 * refused), scratch keys, and lines that are JSON whatever a key holds.
 * Every line is checked by json-c as well as byte for byte.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "watch.h"

static bool takes(const char *path, int layer, const char *key)
{
	struct watch_filter f;
	const char *why;

	if (watch_filter_parse(path, &f, &why) != 0)
		return false;
	return watch_filter_match(&f, layer, key);
}

static int parse_rc(const char *path)
{
	struct watch_filter f;
	const char *why;

	return watch_filter_parse(path, &f, &why);
}

/* The line of a change to key (from), checked to be one JSON object. */
static char *line_of(const char *key, const char *from, const char *op,
		     const char *label)
{
	struct watch_change c = {.key = key,
				 .from = from,
				 .layer = L_RUNTIME,
				 .op = op,
				 .version = 42,
				 .time = {.tv_sec = 1796400000,
					  .tv_nsec = 123456789},
				 .origin = "mount"};
	struct json_object *o;
	size_t len;
	char *line;

	line = watch_format(&c, &len);
	ok(line && len == strlen(line) && line[len - 1] == '\n',
	   "%s: one LF-terminated line", label);
	o = line ? json_tokener_parse(line) : NULL;
	ok(o && json_object_is_type(o, json_type_object), "%s: a JSON object",
	   label);
	json_object_put(o);
	return line;
}

int main(void)
{
	char buf[64], *line;
	char long_path[DSFS_KEY_MAX + 8];

	plan_no_plan();

	ok(takes("", L_RUNTIME, "kv/a"), "no PATH takes everything");
	ok(takes("kv/app", L_RUNTIME, "kv/app"), "kv/app takes itself");
	ok(takes("kv/app/", L_RUNTIME, "kv/app/x/y"), "and what is below it");
	ok(!takes("kv/app", L_RUNTIME, "kv/apple"), "not a sibling sharing "
						    "its first letters");
	ok(!takes("kv/app", L_RUNTIME, "images/app"), "nor another tree");
	ok(takes("kv/app", L_RUNTIME, NULL), "a reset reaches every watch");
	ok(takes("devices/cam", L_EPHEMERAL, "kv/__cam/x"),
	   "devices/ID is kv/__ID");
	ok(!takes("devices/cam", L_RUNTIME, "kv/__camera/x"),
	   "but not kv/__IDmore");
	ok(takes("devices", L_RUNTIME, "kv/__x"), "devices takes every device");
	ok(!takes("devices", L_RUNTIME, "kv/x"), "and nothing else of kv/");
	ok(takes("runtime/kv/a", L_RUNTIME, "kv/a/b"), "a layer's own tree");
	ok(!takes("runtime/kv/a", L_EPHEMERAL, "kv/a/b"),
	   "takes that layer only");
	ok(takes("ephemeral", L_EPHEMERAL, "images/i"), "a whole layer");
	ok(!takes("ephemeral", L_RUNTIME, NULL), "not another's reset");
	is_int(parse_rc("/kv/a"), -EINVAL, "a leading / is refused");
	is_int(parse_rc("kv/../a"), -EINVAL, ".. is refused");
	is_int(parse_rc("kv//a"), -EINVAL, "an empty component is refused");
	is_int(parse_rc("etc/passwd"), -EINVAL, "a path outside the trees");
	is_int(parse_rc("runtime/x"), -EINVAL, "or outside a layer's trees");
	memset(long_path, 'a', sizeof(long_path) - 1);
	memcpy(long_path, "kv/", 3);
	long_path[sizeof(long_path) - 1] = '\0';
	is_int(parse_rc(long_path), -ENAMETOOLONG, "a path over the key limit");

	ok(watch_scratch_key(DSFS_SCRATCH_DEFAULT, "kv/app/.x.swp"),
	   "vim's swap file is scratch");
	ok(watch_scratch_key(DSFS_SCRATCH_DEFAULT, "kv/#x#/y"),
	   "so is anything below a scratch name");
	ok(watch_scratch_key(DSFS_SCRATCH_DEFAULT, "kv/__d/4913"),
	   "in a device too");
	ok(!watch_scratch_key(DSFS_SCRATCH_DEFAULT, "kv/app/x"),
	   "an entry is not");
	ok(!watch_scratch_key(DSFS_SCRATCH_DEFAULT, "images/x~"),
	   "images/ has no scratch names");

	line = line_of("kv/__cam/v", NULL, "write", "device");
	is_str(line,
	       "{\"path\":\"devices/cam/v\",\"tree\":\"devices\","
	       "\"layer\":\"runtime\",\"op\":\"write\",\"version\":42,"
	       "\"time\":\"2026-12-04T16:00:00.123456Z\",\"origin\":\"mount\"}"
	       "\n",
	       "a device's value, shown under devices/");
	free(line);
	line = line_of(NULL, NULL, "reset", "reset");
	ok(line && strncmp(line, "{\"path\":null,\"tree\":null,", 25) == 0,
	   "a reset has no path");
	free(line);
	line = line_of("images/b", "images/a", "rename", "rename");
	ok(line && strstr(line, ",\"from\":\"images/a\"}\n") &&
		   strstr(line, "\"tree\":\"images\""),
	   "a rename tells where from");
	free(line);
	free(line_of("kv/q\"uote\\back\nline\x7f", NULL, "write",
		     "quotes, backslashes and controls"));
	free(line_of("kv/caf\xc3\xa9", NULL, "write", "UTF-8"));
	line = line_of("kv/bad\xff\xfe", NULL, "change", "not UTF-8");
	ok(line && strstr(line, "kv/bad\\ufffd\\ufffd"),
	   "bytes that are not UTF-8 become U+FFFD");
	free(line);

	is_int((int)watch_format_lost(buf, sizeof(buf), 17), 12,
	       "the lost line's length");
	is_str(buf, "{\"lost\":17}\n", "the lost line");
	return done_testing();
}
