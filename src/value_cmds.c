/*
 * value_cmds.c - dsfsctl get, set and update: one value by its path in
 * the mount, for scripts that must know whether a value was stored.
 *
 * A write through the mount that is refused at close goes unheard by a
 * shell's builtin echo (dsfs.8, "Scripts"); these commands commit in one
 * step and exit non-zero with the reason.  On a mounted store they ask the
 * daemon (control.h: get, set), which commits through its live stack and
 * drops the kernel's caches of the entry; on an unmounted one they take
 * STORE/lock and work on the store's files through the same overlay and
 * entry code (entry.h), with the default budgets, the mount options being
 * unknown there, and no ephemeral layer.
 *
 * update holds a lock while its command runs: on a mounted store the
 * entry's flock(LOCK_EX), taken on the file in the mount (found in
 * /proc/self/mountinfo by the store's path, which dsfs gives as the
 * mount's source), which is the lock `flock kv/n ...` takes; on an
 * unmounted one STORE/lock, which shuts out everyone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "watch.h"
#include "control.h"
#include "dsfs.h"
#include "dsfsctl.h"
#include "entry.h"

/* The store's files as a stack: no ephemeral layer (a read-only empty
 * one), the runtime database (made if create; else an empty layer when
 * absent), the factory image or an empty read-only layer. */
static int open_stack(struct store *s, struct dsfs_stack *st, bool create,
		      struct store_error *e)
{
	struct dsfs_layer **l = st->layer;
	int rc;

	rc = ovl_stack_init(st);
	if (rc)
		return store_fail(e, rc, "out of memory");
	rc = layer_mem_open(DSFS_DEFAULT_EPHEMERAL_SIZE, &l[L_EPHEMERAL]);
	if (rc)
		goto fail;
	layer_set_readonly(l[L_EPHEMERAL]);
	rc = store_open_layer(s->path, STORE_RUNTIME, DSFS_DEFAULT_RUNTIME_SIZE,
			      create, NULL, &l[L_RUNTIME], e);
	if (rc == 0)
		rc = watch_offline_observe(s->path, &l[L_RUNTIME]);
	if (rc == -ENOENT && !create) {
		rc = layer_mem_open(DSFS_DEFAULT_RUNTIME_SIZE, &l[L_RUNTIME]);
		if (rc == 0)
			layer_set_readonly(l[L_RUNTIME]);
	}
	if (rc)
		goto fail;
	rc = store_open_layer(s->path, STORE_FACTORY, DSFS_DEFAULT_FACTORY_SIZE,
			      false, NULL, &l[L_FACTORY], e);
	if (rc == -ENOENT) {
		rc = layer_mem_open(DSFS_DEFAULT_FACTORY_SIZE, &l[L_FACTORY]);
		if (rc == 0)
			layer_set_readonly(l[L_FACTORY]);
	}
	if (rc == 0)
		return 0;
fail:
	ovl_stack_destroy(st);
	return store_fail(e, rc, "%s: %s", s->path, strerror(-rc));
}

/* Close the offline stack; a runtime database root made in another
 * user's store goes to that user, whose daemon must open it. */
static void close_stack(struct store *s, struct dsfs_stack *st)
{
	ovl_stack_destroy(st);
	if (geteuid() == 0 && s->st.st_uid != 0)
		fchownat(s->dirfd, STORE_RUNTIME, s->st.st_uid, s->st.st_gid,
			 AT_SYMLINK_NOFOLLOW);
}

/* Open store (made first if create: a store is made by its first use),
 * and take its lock unless a daemon has it (*mounted), for a command on
 * path. */
static int open_store(struct store *s, const char *store, const char *path,
		      bool create, bool *mounted, struct store_error *e)
{
	int rc;

	*mounted = false;
	if (strchr(path, '\n')) {
		store_fail(e, -EINVAL, "%s: a path with a line feed", path);
		return -EINVAL;
	}
	rc = store_open(s, store, create, true, e);
	if (rc)
		return rc;
	rc = store_lock(s, e);
	if (rc == -EWOULDBLOCK) {
		*mounted = true;
		rc = 0;
	}
	if (rc)
		store_close(s);
	return rc;
}

/* Commit value[0..len) at the resolved en on st as this process's user,
 * durably; *why gets the reason of a refusal. */
static int commit_offline(struct store *s, struct dsfs_stack *st,
			  const struct entry *en, const char *value, size_t len,
			  char *why, size_t size)
{
	int rc;

	rc = entry_may_write(en, geteuid(), getegid(), s->st.st_uid,
			     s->st.st_gid);
	if (rc == 0)
		rc = entry_commit(st, en, value, len, geteuid(), getegid(), why,
				  size);
	return rc ? rc : ovl_sync(st);
}

/* The value at path on the store's files: stored from value[0..len) if
 * value is not NULL, else read into *data and *len (nothing, if
 * missing_ok, for a missing entry). */
static int offline_value(struct store *s, const char *path, const char *value,
			 size_t len, bool missing_ok, char **data, size_t *dlen,
			 struct store_error *e)
{
	struct dsfs_stack st = {.changes = 0};
	char why[512] = "";
	const char *reason;
	struct entry en;
	int rc;

	rc = open_stack(s, &st, value != NULL, e);
	if (rc)
		return rc;
	rc = entry_resolve(&st, path, &en, &reason);
	if (rc && reason)
		snprintf(why, sizeof(why), "%s", reason);
	else if (rc == 0 && value)
		rc = commit_offline(s, &st, &en, value, len, why, sizeof(why));
	else if (rc == 0 && en.exists)
		rc = entry_read(&st, &en, data, dlen);
	else if (rc == 0 && !missing_ok)
		rc = -ENOENT;
	if (rc)
		store_fail(e, rc, "%s: %s: %s%s", s->path, path,
			   value ? "not stored: " : "",
			   why[0] ? why : strerror(-rc));
	close_stack(s, &st);
	return rc;
}

static int read_offline(struct store *s, const char *path, bool missing_ok,
			char **data, size_t *len, struct store_error *e)
{
	*data = NULL;
	*len = 0;
	return offline_value(s, path, NULL, 0, missing_ok, data, len, e);
}

/* The value at path, from the daemon. */
static int read_mounted(struct store *s, const char *path, bool missing_ok,
			char **data, size_t *len, struct store_error *e)
{
	char request[CONTROL_LINE_MAX], reply[CONTROL_REPLY_MAX];
	struct store_error quiet = {.text = ""};
	int rc;

	*data = NULL;
	*len = 0;
	snprintf(request, sizeof(request), "get %s", path);
	rc = store_call(s, request, NULL, 0, data, len, reply, sizeof(reply),
			missing_ok ? &quiet : e);
	if (rc == -ENOENT && missing_ok)
		return 0;
	if (rc && missing_ok)
		return store_fail(e, rc, "%s", quiet.text);
	return rc;
}

static int write_offline(struct store *s, const char *path, const char *value,
			 size_t len, struct store_error *e)
{
	return offline_value(s, path, value, len, false, NULL, NULL, e);
}

static int write_mounted(struct store *s, const char *path, const char *value,
			 size_t len, struct store_error *e)
{
	char request[CONTROL_LINE_MAX], reply[CONTROL_REPLY_MAX];

	snprintf(request, sizeof(request), "set %zu %s", len, path);
	return store_call(s, request, value, len, NULL, NULL, reply,
			  sizeof(reply), e);
}

/* get (value NULL: into *data and *dlen) or set the value at path,
 * mounted or not. */
static int one_value(const char *store, const char *path, const char *value,
		     size_t len, char **data, size_t *dlen,
		     struct store_error *e)
{
	struct store s;
	char *got = NULL;
	size_t glen = 0;
	bool mounted;
	int rc;

	rc = open_store(&s, store, path, value != NULL, &mounted, e);
	if (rc)
		return rc;
	if (value && mounted)
		rc = write_mounted(&s, path, value, len, e);
	else if (value)
		rc = write_offline(&s, path, value, len, e);
	else if (mounted)
		rc = read_mounted(&s, path, false, &got, &glen, e);
	else
		rc = read_offline(&s, path, false, &got, &glen, e);
	store_close(&s);
	if (data) {
		*data = got;
		*dlen = glen;
	} else {
		free(got);
	}
	return rc;
}

int value_get(const char *store, const char *path, FILE *out,
	      struct store_error *e)
{
	size_t len;
	char *data;
	int rc;

	rc = one_value(store, path, NULL, 0, &data, &len, e);
	if (rc)
		return rc;
	if (fwrite(data, 1, len, out) != len || fflush(out) != 0)
		rc = store_fail(e, -errno, "writing the value: %s",
				strerror(errno));
	free(data);
	return rc;
}

int value_set(const char *store, const char *path, const char *value,
	      size_t len, struct store_error *e)
{
	return one_value(store, path, value, len, NULL, NULL, e);
}

/* ---- update ---------------------------------------------------------- */

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *p)
{
	char *out = p;

	for (; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] &&
		    p[3]) {
			*out++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 +
					(p[3] - '0'));
			p += 3;
		} else {
			*out++ = *p;
		}
	}
	*out = '\0';
}

/* Where store is mounted: a new string, or NULL. */
static char *find_mount(const char *store)
{
	char *real = realpath(store, NULL), *line = NULL, *found = NULL;
	char *mnt, *type, *source, *dash, *save;
	size_t cap = 0;
	FILE *f;

	f = real ? fopen("/proc/self/mountinfo", "re") : NULL;
	while (f && !found && getline(&line, &cap, f) > 0) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - TYPE SOURCE */
		dash = strstr(line, " - ");
		if (!dash)
			continue;
		*dash = '\0';
		strtok_r(line, " ", &save);
		for (int i = 0; i < 3; i++)
			strtok_r(NULL, " ", &save);
		mnt = strtok_r(NULL, " ", &save);
		type = strtok_r(dash + 3, " ", &save);
		source = strtok_r(NULL, " ", &save);
		if (!mnt || !type || !source || strcmp(type, "fuse.dsfs") != 0)
			continue;
		unescape(source);
		if (strcmp(source, real) == 0) {
			unescape(mnt);
			found = strdup(mnt);
		}
	}
	if (f)
		fclose(f);
	free(line);
	free(real);
	return found;
}

/* Run argv with in[0..inlen) on its standard input; its standard output
 * into *out (a new buffer).  -ECANCELED if it did not exit with 0. */
static int run_filter(char **argv, const char *in, size_t inlen, char **out,
		      size_t *outlen, struct store_error *e)
{
	size_t cap = 4096, len = 0;
	int p[2], status, rc = 0;
	char *buf, *grown;
	FILE *tmp;
	ssize_t n;
	pid_t pid;

	tmp = tmpfile();
	if (!tmp)
		return store_fail(e, -errno, "tmpfile: %s", strerror(errno));
	if ((inlen && fwrite(in, 1, inlen, tmp) != inlen) || fflush(tmp) ||
	    fseek(tmp, 0, SEEK_SET)) {
		rc = store_fail(e, -EIO, "tmpfile: %s", strerror(errno));
		goto out_tmp;
	}
	buf = malloc(cap);
	if (!buf || pipe2(p, O_CLOEXEC) != 0) {
		free(buf);
		rc = store_fail(e, -errno, "%s", strerror(errno));
		goto out_tmp;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		dup2(fileno(tmp), 0);
		dup2(p[1], 1);
		execvp(argv[0], argv);
		fprintf(stderr, "dsfsctl: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	while (pid > 0 && (n = read(p[0], buf + len, cap - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = store_fail(e, -errno, "reading %s: %s", argv[0],
					strerror(errno));
			break;
		}
		len += (size_t)n;
		if (len == cap && cap < CONTROL_VALUE_MAX) {
			grown = realloc(buf, cap * 2);
			if (!grown) {
				rc = store_fail(e, -ENOMEM, "out of memory");
				break;
			}
			buf = grown;
			cap *= 2;
		} else if (len == cap) {
			rc = store_fail(e, -EFBIG, "%s: output too long",
					argv[0]);
			break;
		}
	}
	close(p[0]);
	if (pid < 0)
		rc = store_fail(e, -errno, "fork: %s", strerror(errno));
	else if (waitpid(pid, &status, 0) < 0)
		rc = store_fail(e, -errno, "waitpid: %s", strerror(errno));
	else if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		rc = store_fail(e, -ECANCELED,
				"%s %s %d: the value is unchanged", argv[0],
				WIFEXITED(status) ? "exited with status" :
						    "was killed by signal",
				WIFEXITED(status) ? WEXITSTATUS(status) :
						    WTERMSIG(status));
	if (rc) {
		free(buf);
	} else {
		*out = buf;
		*outlen = len;
	}
out_tmp:
	fclose(tmp);
	return rc;
}

/* Read, filter and store, with the lock held by the caller. */
static int update_locked(struct store *s, bool mounted, const char *path,
			 char **argv, struct store_error *e)
{
	char *value, *out = NULL;
	size_t len, outlen = 0;
	int rc;

	rc = mounted ? read_mounted(s, path, true, &value, &len, e) :
		       read_offline(s, path, true, &value, &len, e);
	if (rc)
		return rc;
	rc = run_filter(argv, value, len, &out, &outlen, e);
	free(value);
	if (rc)
		return rc;
	rc = mounted ? write_mounted(s, path, out, outlen, e) :
		       write_offline(s, path, out, outlen, e);
	free(out);
	return rc;
}

/* Open (making it if need be) and flock the entry in the mount; *made is
 * its path in the mount (a new string) if this made it, else NULL. */
static int lock_entry(const char *store, const char *path, int *fd, char **made,
		      struct store_error *e)
{
	char *mnt = find_mount(store), *file;
	int rc = 0;

	*made = NULL;
	if (!mnt)
		return store_fail(e, -ENOENT,
				  "%s: in use, but no dsfs mount of it is "
				  "listed in /proc/self/mountinfo: update "
				  "needs the mount to lock %s",
				  store, path);
	if (asprintf(&file, "%s/%s", mnt, path) < 0) {
		free(mnt);
		return store_fail(e, -ENOMEM, "out of memory");
	}
	free(mnt);
	*fd = open(file, O_RDONLY | O_CLOEXEC);
	if (*fd < 0 && errno == ENOENT) {
		*fd = open(file, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (*fd >= 0)
			*made = file;
	}
	if (*fd < 0)
		rc = store_fail(e, -errno, "%s: %s", file, strerror(errno));
	else if (flock(*fd, LOCK_EX) != 0)
		rc = store_fail(e, -errno, "%s: flock: %s", file,
				strerror(errno));
	if (rc && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	if (rc && *made)
		unlink(*made);
	if (rc || !*made)
		free(file);
	if (rc)
		*made = NULL;
	return rc;
}

int value_update(const char *store, const char *path, char **argv,
		 struct store_error *e)
{
	char *made = NULL;
	struct store s;
	bool mounted;
	int fd = -1, rc;

	rc = open_store(&s, store, path, true, &mounted, e);
	if (rc)
		return rc;
	if (mounted)
		rc = lock_entry(store, path, &fd, &made, e);
	if (rc == 0)
		rc = update_locked(&s, mounted, path, argv, e);
	/* An entry made only to be locked goes again if nothing was
	 * stored in it; unlinked before the lock is let go. */
	if (rc && made)
		unlink(made);
	free(made);
	if (fd >= 0)
		close(fd);
	store_close(&s);
	return rc;
}
