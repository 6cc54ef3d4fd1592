/*
 * main.c - dsfs, the daemon: parse the command line, check and lock the
 * store, mount, detach, open the layers, run the FUSE session, clean up.
 *
 * The store is checked before the mount (so a damaged or foreign database
 * is refused with a message on the terminal and no mount appears) and the
 * layers are opened for real only after the daemon has detached: SQLite
 * connections and their POSIX locks must not cross a fork().
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "pagecache.h"
#include "log.h"
#include "store.h"

#define DSFS_VERSION_STRING "dsfs " PACKAGE_VERSION
#define SESSION_THREADS 64 /* the most that serve requests at once */

struct options {
	char *store;
	char *mountpoint;
	char *runtime_size;
	char *ephemeral_size;
	char *factory_size;
	char *scratch; /* NULL: DSFS_SCRATCH_DEFAULT */
	char *runtime;
	double cache_timeout;
	int cache_timeout_given;
	unsigned page_size;
	unsigned inode_cache;
	char *busy_poll;
	int foreground;
	int debug;
	int single_thread;
	int show_help;
	int show_version;
	int nonopts;
};

#define OPT(t, p)                                 \
	{                                         \
		t, offsetof(struct options, p), 1 \
	}

static const struct fuse_opt option_spec[] = {
	OPT("runtime_size=%s", runtime_size),
	OPT("ephemeral_size=%s", ephemeral_size),
	OPT("factory_size=%s", factory_size),
	OPT("scratch=%s", scratch),
	OPT("runtime=%s", runtime),
	OPT("cache_timeout=%lf", cache_timeout),
	OPT("cache_timeout=", cache_timeout_given),
	OPT("page_size=%u", page_size),
	OPT("inode_cache=%u", inode_cache),
	OPT("busy_poll=%s", busy_poll),
	OPT("-f", foreground),
	OPT("-s", single_thread),
	OPT("-d", debug),
	OPT("debug", debug),
	OPT("-h", show_help),
	OPT("--help", show_help),
	OPT("-V", show_version),
	OPT("--version", show_version),
	FUSE_OPT_END,
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: dsfs [-dfsV] [-o option[,option...]] STORE MOUNTPOINT\n"
		"\n"
		"dsfs options:\n"
		"    -o runtime_size=SIZE    runtime layer budget (default 13M)\n"
		"    -o ephemeral_size=SIZE  ephemeral layer budget (default "
		"128M)\n"
		"    -o factory_size=SIZE    factory layer budget (default 13M)\n"
		"    -o runtime=BACKEND      the runtime layer: sqlite "
		"(default),\n"
		"                            memory, or a PostgreSQL "
		"postgresql://URI\n"
		"    -o cache_timeout=SECS   kernel cache of kv/ and images/ "
		"(default 60)\n"
		"    -o scratch=PATTERNS     editors' scratch names, ':' "
		"between\n"
		"    -o page_size=BYTES      page size of a new runtime store "
		"(default 512)\n"
		"    -o inode_cache=N        files the kernel keeps inodes of "
		"(default 16384,\n"
		"                            0: no bound)\n"
		"    -o busy_poll=USEC       poll for the kernel's next request "
		"(and a\n"
		"                            PostgreSQL runtime's answers) up "
		"to USEC µs\n"
		"                            before sleeping (default 50, "
		"0: never)\n"
		"    -f                      stay in the foreground, log to "
		"stderr\n"
		"    -d                      debug: -f and every request "
		"logged\n"
		"    -s                      single-threaded\n"
		"SIZE takes a K, M or G suffix (powers of 1024).\n"
		"Other -o options go to FUSE (allow_other, ...): see "
		"dsfs(8).\n");
}

static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct options *o = data;

	(void)outargs;
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;
	if (o->nonopts == 0)
		o->store = strdup(arg);
	else if (o->nonopts == 1)
		o->mountpoint = strdup(arg);
	o->nonopts++;
	return 0;
}

/* A runtime that other hosts share: PostgreSQL (remote.c). */
static bool shared_runtime(const char *runtime)
{
	return runtime && strcmp(runtime, "memory") != 0;
}

static int set_budget(const char *name, const char *value, uint64_t *budget)
{
	if (!value)
		return 0;
	if (parse_size(value, budget) != 0) {
		fprintf(stderr, "dsfs: %s=%s: not a size (e.g. 13M)\n", name,
			value);
		return -EINVAL;
	}
	return 0;
}

/* -o busy_poll=USEC: microseconds, up to a tenth of a second (more would
 * be a thread spinning for nothing). */
static int set_busy_poll(const char *value, unsigned *usec)
{
	char *end;
	unsigned long v;

	if (!value)
		return 0;
	errno = 0;
	v = strtoul(value, &end, 10);
	if (!isdigit((unsigned char)value[0]) || *end || errno ||
	    v > DSFS_MAX_BUSY_POLL) {
		fprintf(stderr,
			"dsfs: busy_poll=%s: not a number of microseconds "
			"from 0 to %u\n",
			value, DSFS_MAX_BUSY_POLL);
		return -EINVAL;
	}
	*usec = (unsigned)v;
	return 0;
}

/* The password of a runtime conninfo must not show in ps: fuse_opt_parse()
 * has copied the arguments, so the originals are overwritten. */
static void hide_passwords(int argc, char *argv[])
{
	int i;

	for (i = 1; i < argc; i++)
		if (strstr(argv[i], "runtime="))
			layer_pg_hide_password(argv[i]);
}

/* -o runtime=: checked now, while errors reach the terminal; the default
 * (sqlite) is NULL in ctx->runtime, which points into o's string. */
static int use_runtime(struct dsfs_ctx *ctx, char *runtime)
{
	struct store_error e = {.text = ""};

	if (store_check_runtime(runtime, &e) != 0) {
		fprintf(stderr, "dsfs: %s\n", e.text);
		return -EINVAL;
	}
	ctx->runtime = runtime && strcmp(runtime, "sqlite") != 0 ? runtime :
								   NULL;
	return 0;
}

/* -o page_size: make STORE/runtime.db with that page size if it does not
 * exist yet; an existing store keeps the one it was made with. */
static int make_runtime(const char *store, unsigned page_size)
{
	const char *why = "";
	char path[PATH_MAX];
	int rc;

	if (!page_size)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", store, STORE_RUNTIME);
	rc = layer_sqlite_create(path, page_size, &why);
	if (rc == -EEXIST) {
		log_info("%s: page_size=%u not applied: %s", path, page_size,
			 why);
		return 0;
	}
	if (rc)
		log_err("%s: page_size=%u: %s", path, page_size,
			*why ? why : strerror(-rc));
	return rc;
}

/* Open the layer on STORE/name; a failure is logged, followed by after,
 * unless it is a missing factory image (-ENOENT). */
static int open_layer(const char *store, const char *name, uint64_t budget,
		      const char *doing, const char *after,
		      struct dsfs_layer **out)
{
	struct store_error e = {.text = ""};
	int rc;

	rc = store_open_layer(store, name, budget,
			      strcmp(name, STORE_RUNTIME) == 0, doing, out, &e);
	if (rc && e.text[0])
		log_err("%s%s", e.text, after);
	return rc;
}

/* The factory layer: STORE/factory.db, or an empty read-only layer when
 * there is no image. */
static int open_factory(const char *store, uint64_t budget,
			struct dsfs_layer **out)
{
	int rc;

	rc = open_layer(store, STORE_FACTORY, budget,
			"cannot use factory image", "", out);
	if (rc != -ENOENT)
		return rc;
	/* No image: an empty, read-only factory layer. */
	rc = layer_mem_open(budget, out);
	if (rc == 0)
		layer_set_readonly(*out);
	return rc;
}

static int open_runtime(const char *store, const char *runtime, uint64_t budget,
			unsigned flags, struct dsfs_layer **out)
{
	struct store_error e = {.text = ""};
	int rc;

	if (runtime) {
		/* memory or PostgreSQL: nothing of STORE/runtime.db. */
		rc = store_open_runtime(store, runtime, budget, flags,
					"cannot use the runtime layer", out,
					&e);
		if (rc)
			log_err("%s (refusing to mount)", e.text);
		return rc;
	}
	rc = open_layer(store, STORE_RUNTIME, budget,
			"cannot use runtime database",
			" (refusing to mount; the file is left as it is)", out);
	if (rc)
		return rc;
	/* Room to remove values from a disk that values filled. */
	if (layer_sqlite_reserve(*out, STORE_RESERVE_BYTES) != 0)
		log_warn("%s/%s: no room for a space reserve of %u bytes:"
			 " removing values from a full disk may fail",
			 store, STORE_RUNTIME, STORE_RESERVE_BYTES);
	/* The daemon is the store's only user while mounted (dsfsctl asks
	 * it through the control socket). */
	rc = layer_sqlite_exclusive(*out);
	if (rc != 0)
		log_warn("%s/%s: cannot lock the database for the daemon "
			 "alone: %s",
			 store, STORE_RUNTIME, strerror(-rc));
	/* Large images as files beside the database: a 1 MiB image costs
	 * one write and one sync instead of 2,048 WAL frames and a
	 * checkpoint (layer_sqlite_blobfile.c). */
	if (layer_sqlite_blob_files(*out, STORE_BLOB_FILE_MIN) != 0)
		log_warn("%s/%s: images are kept in the database", store,
			 STORE_RUNTIME);
	return 0;
}

/* The options of a shared runtime's layer.  Where the kernel may answer
 * from its cache, so may the layer (layer_pg_remember()): the same bound
 * (in ms, within an unsigned), the same news. */
static void tune_shared(const struct dsfs_ctx *ctx, struct dsfs_layer *l)
{
	double ms = ctx->timeout * 1000;

	if (ctx->loop)
		layer_pg_on_wait(l, fuse_loop_waiting, ctx->loop);
	if (layer_pg_busy_poll(l, ctx->busy_poll) != 0)
		log_err("busy_poll=%u: the runtime layer has no connection "
			"to poll; its threads sleep",
			ctx->busy_poll);
	if (ms >= 1 &&
	    layer_pg_remember(l, ms < UINT_MAX ? (unsigned)ms : UINT_MAX) != 0)
		log_err("cache_timeout: the runtime layer cannot remember "
			"directories; it asks the database every time");
}

static int open_stack(struct dsfs_ctx *ctx)
{
	struct dsfs_stack *s = &ctx->stack;
	int rc;

	rc = layer_mem_open(ctx->budget[L_EPHEMERAL], &s->layer[L_EPHEMERAL]);
	if (rc)
		goto fail;
	rc = open_runtime(ctx->store, ctx->runtime, ctx->budget[L_RUNTIME],
			  ctx->runtime_size_given ? LAYER_PG_SET_BUDGET : 0,
			  &s->layer[L_RUNTIME]);
	if (rc)
		goto fail_ephemeral;
	if (shared_runtime(ctx->runtime))
		tune_shared(ctx, s->layer[L_RUNTIME]);
	rc = open_factory(ctx->store, ctx->budget[L_FACTORY],
			  &s->layer[L_FACTORY]);
	if (rc)
		goto fail_runtime;
	return 0;

fail_runtime:
	layer_close(s->layer[L_RUNTIME]);
fail_ephemeral:
	layer_close(s->layer[L_EPHEMERAL]);
fail:
	memset(s->layer, 0, sizeof(s->layer));
	return rc;
}

static void close_stack(struct dsfs_ctx *ctx)
{
	int i;

	for (i = 0; i < DSFS_NLAYERS; i++)
		if (ctx->stack.layer[i])
			layer_close(ctx->stack.layer[i]);
	memset(ctx->stack.layer, 0, sizeof(ctx->stack.layer));
}

/* Make the store directory (0700) if it is missing, resolve it, and lock
 * it: one daemon (or one offline dsfsctl) per store. */
static int prepare_store(struct dsfs_ctx *ctx, const char *store)
{
	struct store_error e = {.text = ""};
	struct store s;
	struct stat st;
	int rc;

	if (store_make(store, &e) != 0) {
		fprintf(stderr, "dsfs: %s\n", e.text);
		return -1;
	}
	ctx->store = realpath(store, NULL);
	if (!ctx->store || stat(ctx->store, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "dsfs: %s: not a directory\n", store);
		return -1;
	}
	ctx->owner_uid = st.st_uid;
	ctx->owner_gid = st.st_gid;
	/* Anyone the directory lets in may serve it: not only its owner. */
	rc = store_open(&s, ctx->store, false, false, &e);
	if (rc == 0)
		rc = store_lock(&s, &e);
	if (rc == -EWOULDBLOCK)
		fprintf(stderr,
			"dsfs: %s: store is in use (mounted, or "
			"dsfsctl is working on it)\n",
			ctx->store);
	else if (rc)
		fprintf(stderr, "dsfs: %s\n", e.text);
	if (rc == 0)
		rc = store_record_runtime(&s, ctx->runtime, &e);
	if (rc && rc != -EWOULDBLOCK && e.text[0] && s.lockfd >= 0)
		fprintf(stderr, "dsfs: %s\n", e.text);
	if (rc == 0) {
		store_drop_leftover(&s);
		/* Held until the daemon exits. */
		ctx->lock_fd = s.lockfd;
		s.lockfd = -1;
	}
	store_close(&s);
	return rc ? -1 : 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct options o = {.cache_timeout = 60.0,
			    .inode_cache = DSFS_DEFAULT_INODE_CACHE};
	struct dsfs_ctx ctx;
	struct fuse_loop_config *cfg;
	char *fsname = NULL, *mountpoint = NULL;
	int ret = 1, rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.lock_fd = ctx.control_fd = -1;
	log_init("dsfs", true, false);
#ifdef M_MMAP_THRESHOLD
	/* A listing of a big directory is a few large blocks freed soon
	 * after.  With a fixed threshold glibc maps them apart and gives them
	 * back at free; left to itself it raises the threshold after the
	 * first such free and keeps the next ones in the heap, where the
	 * memory stays with the daemon. */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
#ifdef M_ARENA_MAX
	/* glibc gives each new thread that finds the arenas busy an arena of
	 * its own, whose freed memory stays with it: on a busy machine, where
	 * libfuse starts more threads, 100,000 files read and listed peaked
	 * 2 MiB higher, and the figure moved from run to run (0.1 MiB on a
	 * quiet one).  Small blocks come from each thread's cache anyway:
	 * two threads overwriting and reading took 66 µs an operation with
	 * one arena or many. */
	mallopt(M_ARENA_MAX, 1);
#endif
	if (fuse_opt_parse(&args, &o, option_spec, opt_proc) != 0)
		goto out_args;
	hide_passwords(argc, argv);
	if (o.show_help) {
		usage(stdout);
		ret = 0;
		goto out_args;
	}
	if (o.show_version) {
		printf("%s (FUSE %s)\n", DSFS_VERSION_STRING,
		       fuse_pkgversion());
		ret = 0;
		goto out_args;
	}
	if (o.nonopts != 2) {
		usage(stderr);
		goto out_args;
	}
	if (o.debug)
		o.foreground = 1;
	ctx.budget[L_FACTORY] = DSFS_DEFAULT_FACTORY_SIZE;
	ctx.budget[L_RUNTIME] = DSFS_DEFAULT_RUNTIME_SIZE;
	ctx.budget[L_EPHEMERAL] = DSFS_DEFAULT_EPHEMERAL_SIZE;
	ctx.runtime_size_given = o.runtime_size != NULL;
	ctx.busy_poll = DSFS_DEFAULT_BUSY_POLL;
	if (set_busy_poll(o.busy_poll, &ctx.busy_poll))
		goto out_args;
	if (set_budget("runtime_size", o.runtime_size,
		       &ctx.budget[L_RUNTIME]) ||
	    set_budget("ephemeral_size", o.ephemeral_size,
		       &ctx.budget[L_EPHEMERAL]) ||
	    set_budget("factory_size", o.factory_size, &ctx.budget[L_FACTORY]))
		goto out_args;
	if (use_runtime(&ctx, o.runtime) != 0)
		goto out_args;
	if (o.cache_timeout < 0)
		o.cache_timeout = 0;
	/* Other hosts change a shared runtime below this kernel: unless told
	 * otherwise, it caches no name by time, so that a lookup or a stat
	 * made after their commit sees it (close-to-open across hosts), and
	 * attributes for the rest of a system call only (attrs.c). */
	ctx.attr_timeout = o.cache_timeout;
	if (shared_runtime(ctx.runtime) && !o.cache_timeout_given) {
		o.cache_timeout = 0;
		ctx.attr_timeout = WALK_ATTR_TIMEOUT;
	}
	ctx.timeout = o.cache_timeout;
	clock_gettime(CLOCK_REALTIME, &ctx.started);
	log_init("dsfs", true, o.debug);

	if (prepare_store(&ctx, o.store) != 0)
		goto out_store;
	if (!ctx.runtime && make_runtime(ctx.store, o.page_size) != 0)
		goto out_store;
	if (ovl_stack_init(&ctx.stack) != 0)
		goto out_store;
	ctx.stack.scratch = o.scratch ? o.scratch : DSFS_SCRATCH_DEFAULT;
	if (reserve_init(&ctx.reserve) != 0 ||
	    last_errors_init(&ctx.errors) != 0)
		goto out_stack;
	/* Check the store now, while errors reach the terminal. */
	if (open_stack(&ctx) != 0)
		goto out_stack;
	close_stack(&ctx);
	if (control_listen(&ctx) != 0)
		goto out_stack;

	if (asprintf(&fsname, "-ofsname=%s,subtype=dsfs,default_permissions",
		     ctx.store) < 0 ||
	    fuse_opt_add_arg(&args, fsname) != 0 ||
	    (o.debug && fuse_opt_add_arg(&args, "-odebug") != 0))
		goto out_control;
	if (nodes_init(&ctx.nodes) != 0)
		goto out_control;
	if (dirlists_init(&ctx.dirs, &ctx.nodes) != 0)
		goto out_nodes;
	pthread_mutex_init(&ctx.open_dirs_lock, NULL);
	pthread_mutex_init(&ctx.open_files_lock, NULL);
	pthread_mutex_init(&ctx.recent.lock, NULL);
	handle_spare_init(&ctx.spare);
	ctx.se = fuse_session_new(&args, &dsfs_ll_ops, sizeof(dsfs_ll_ops),
				  &ctx);
	if (!ctx.se)
		goto out_dirs;
	if (fuse_set_signal_handlers(ctx.se) != 0)
		goto out_session;
	/* Absolute: the daemon leaves its working directory when it
	 * detaches, and unmounts by this path at exit. */
	mountpoint = realpath(o.mountpoint, NULL);
	if (!mountpoint) {
		fprintf(stderr, "dsfs: %s: %s\n", o.mountpoint,
			strerror(errno));
		goto out_signals;
	}
	if (fuse_session_mount(ctx.se, mountpoint) != 0)
		goto out_signals;
	if (fuse_daemonize(o.foreground) != 0)
		goto out_unmount;
	log_init("dsfs", o.foreground, o.debug);
	/* Before the layers, which are told of it (tune_shared()). */
	if (ctx.busy_poll && !o.single_thread) {
		rc = fuse_loop_new(ctx.se, ctx.busy_poll, SESSION_THREADS,
				   &ctx.loop);
		if (rc) {
			log_err("%s: the session's threads: %s", ctx.store,
				strerror(-rc));
			goto out_unmount;
		}
	}
	if (open_stack(&ctx) != 0)
		goto out_unmount;
	if (watch_start(&ctx) != 0)
		goto out_layers;
	if (shared_runtime(ctx.runtime) && remote_start(&ctx, ctx.runtime) != 0)
		goto out_layers;
	/* On a single host too, flock() follows the entry, not the inode
	 * (pagecache.c gives each version its own). */
	if (!ctx.flocks && flocks_new(NULL, &ctx.flocks) != 0)
		goto out_layers;
	rc = pagecache_push_start(&ctx);
	if (rc)
		log_warn("%s: images not pushed into the page cache: %s",
			 ctx.store, strerror(-rc));
	rc = evict_start(&ctx, o.inode_cache);
	if (rc) {
		log_err("%s: inode_cache: %s", ctx.store, strerror(-rc));
		goto out_layers;
	}
	rc = control_start(&ctx);
	if (rc)
		log_warn("%s: control socket not served: %s", ctx.store,
			 strerror(-rc));
	log_info("%s mounted on %s", ctx.store, mountpoint);

	if (o.single_thread) {
		ret = fuse_session_loop(ctx.se);
	} else if (ctx.loop) {
		rc = fuse_loop_run(ctx.loop);
		if (rc)
			log_err("%s: the session's threads: %s", ctx.store,
				strerror(-rc));
		ret = rc;
	} else {
		cfg = fuse_loop_cfg_create();
		if (!cfg)
			goto out_layers;
		fuse_loop_cfg_set_max_threads(cfg, SESSION_THREADS);
		ret = fuse_session_loop_mt(ctx.se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	ret = ret != 0;

out_layers:
	evict_stop(&ctx);
	pagecache_push_stop(&ctx);
	control_stop(&ctx);
	if (!ctx.cluster) {
		flocks_free(ctx.flocks);
		ctx.flocks = NULL;
	}
	remote_stop(&ctx);
	watch_stop(&ctx);
out_unmount:
	fuse_session_unmount(ctx.se);
out_signals:
	fuse_remove_signal_handlers(ctx.se);
out_session:
	fuse_session_destroy(ctx.se);
out_dirs:
	file_drop_all(&ctx);
	pthread_mutex_destroy(&ctx.open_files_lock);
	fuse_ops_free_dirs(&ctx);
	pthread_mutex_destroy(&ctx.open_dirs_lock);
	free(ctx.recent.buf);
	pthread_mutex_destroy(&ctx.recent.lock);
	handle_spare_destroy(&ctx.spare);
	dirlists_destroy(&ctx.dirs);
out_nodes:
	nodes_destroy(&ctx.nodes);
out_control:
	if (ctx.control_fd >= 0) {
		char path[PATH_MAX];

		close(ctx.control_fd);
		snprintf(path, sizeof(path), "%s/%s", ctx.store, STORE_SOCKET);
		unlink(path);
	}
out_stack:
	last_errors_destroy(&ctx.errors);
	reserve_destroy(&ctx.reserve);
	ovl_stack_destroy(&ctx.stack);
	/* After the layers: a PostgreSQL one's close waits for its server,
	 * and tells the loop (fuse_loop_waiting()). */
	fuse_loop_free(ctx.loop);
out_store:
	if (ctx.lock_fd >= 0)
		close(ctx.lock_fd);
	free(ctx.store);
	free(fsname);
	free(mountpoint);
out_args:
	free(o.store);
	free(o.mountpoint);
	free(o.runtime_size);
	free(o.busy_poll);
	free(o.ephemeral_size);
	free(o.factory_size);
	free(o.scratch);
	free(o.runtime);
	fuse_opt_free_args(&args);
	return ret;
}
