/*
 * pagecache_push.c - an image's bytes put into the kernel's page cache
 * while its commit waits for the disk.
 *
 * An image read back after its write needs its bytes in the kernel's
 * pages: one copy of 1 MiB into 256 new pages, which a FUSE filesystem
 * makes by a READ's reply or a store, on the daemon's CPU.  Made by the
 * reader's open (pagecache.c, store_pages()), the reader waits for it.
 * Made by the writer's commit, it can take time the writer waits for
 * anyway: the commit syncs the image's file and its directory, and the
 * daemon's CPU is idle meanwhile.  So the commit queues its copy here,
 * and a thread at SCHED_IDLE priority, which runs only when nothing else
 * of the daemon's would, stores it.  A push that has not begun when the
 * commit returns is called off, and one under way stops at the end of
 * its piece: the commit never waits for more than that.  A commit into
 * memory (runtime=memory, the ephemeral layer) pushes nothing: it has no
 * disk to wait for, and its readers' opens push the image as before.
 *
 * The pages are vouched for only by a commit that stored that very copy
 * (inode.h, node_pages_pushing()): until then, and for good if the commit
 * fails, they are no version's, and their next reader drops them.  One
 * push at a time, so that the last ticket given is the last push made.
 */
#include "pagecache.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "handle.h"

enum {
	PUSH_IDLE,
	PUSH_QUEUED,
	PUSH_BUSY,
	PUSH_DONE
};

/* Four pages, a few µs of copying: the commit, woken by its disk, waits
 * no longer than that for the CPU (the kernel does not preempt a system
 * call here).  With 64 KiB pieces its syncs took up to 0.5 ms longer in
 * some runs. */
#define PUSH_PIECE (16 * 1024)

static void *push_main(void *arg)
{
	struct dsfs_ctx *ctx = arg;
	struct page_push *p = &ctx->push;
	struct fuse_bufvec buf;
	size_t off, len;
	int rc;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->state != PUSH_QUEUED && !p->stopping)
			pthread_cond_wait(&p->wake, &p->lock);
		if (p->stopping)
			break;
		p->state = PUSH_BUSY;
		pthread_mutex_unlock(&p->lock);
		/* In pieces: a kernel without preemption switches to the
		 * commit, woken by its disk, only between system calls. */
		rc = 0;
		for (off = 0; rc == 0 && off < p->len; off += len) {
			/* The commit is over: what is left would be waited
			 * for, so the push stops (the pages stay no
			 * version's). */
			if (__atomic_load_n(&p->stop_push, __ATOMIC_RELAXED)) {
				rc = -ECANCELED;
				break;
			}
			len = p->len - off < PUSH_PIECE ? p->len - off :
							  PUSH_PIECE;
			buf = (struct fuse_bufvec)FUSE_BUFVEC_INIT(len);
			buf.buf[0].mem = (void *)(p->buf + off);
			rc = fuse_lowlevel_notify_store(ctx->se, p->ino,
							(off_t)off, &buf, 0);
		}
		pthread_mutex_lock(&p->lock);
		p->rc = rc;
		p->state = PUSH_DONE;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int pagecache_push_start(struct dsfs_ctx *ctx)
{
	struct page_push *p = &ctx->push;
	struct sched_param idle = {0};
	int rc;

	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->done, NULL);
	p->state = PUSH_IDLE;
	p->stopping = false;
	rc = pthread_create(&p->thread, NULL, push_main, ctx);
	if (rc) {
		pthread_cond_destroy(&p->done);
		pthread_cond_destroy(&p->wake);
		pthread_mutex_destroy(&p->lock);
		return -rc;
	}
	p->running = true;
	/* Only the CPU time nothing else of the daemon's wants: a thread
	 * that cannot have it is stopped (main.c says why), since at the
	 * commits' priority it would slow them. */
	rc = pthread_setschedparam(p->thread, SCHED_IDLE, &idle);
	if (rc) {
		pagecache_push_stop(ctx);
		return -rc;
	}
	return 0;
}

void pagecache_push_stop(struct dsfs_ctx *ctx)
{
	struct page_push *p = &ctx->push;

	if (!p->running)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	p->running = false;
	pthread_cond_destroy(&p->done);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
}

uint32_t pagecache_push_begin(struct dsfs_ctx *ctx, struct handle *h)
{
	struct page_push *p = &ctx->push;
	struct node *n = h->node;
	uint32_t ticket = 0;

	/* Images of the merged images/, whose changes below the kernel
	 * are all told to it (pagecache.c, cacheable()). */
	if (!p->running || h->content != DSFS_CONTENT_IMAGE || h->len == 0 ||
	    h->len > PAGECACHE_STORE_MAX || n->special != NODE_PLAIN ||
	    n->view != VIEW_MERGED || n->tree != TREE_IMAGES)
		return 0;
	/* Only a commit that waits, for the runtime's disk or its server,
	 * has time to spare: one into memory would pay for the push. */
	if (!h->res.active || h->res.layer != L_RUNTIME ||
	    (ctx->runtime && strcmp(ctx->runtime, "memory") == 0))
		return 0;
	pthread_mutex_lock(&p->lock);
	/* Another writer's push holds the slot: this copy is left to its
	 * first reader, as without the thread. */
	if (p->state == PUSH_IDLE && !p->stopping)
		ticket = node_pages_pushing(&ctx->nodes, n);
	if (ticket) {
		p->ino = n->ino;
		p->buf = h->buf;
		p->len = h->len;
		p->state = PUSH_QUEUED;
		pthread_cond_signal(&p->wake);
	}
	pthread_mutex_unlock(&p->lock);
	return ticket;
}

void pagecache_push_end(struct dsfs_ctx *ctx, struct handle *h, uint32_t ticket,
			const struct found *f)
{
	struct page_push *p = &ctx->push;
	bool pushed;

	h->pushed = false;
	if (!ticket)
		return;
	pthread_mutex_lock(&p->lock);
	/* Under way: stopped at the end of its piece, so that a commit
	 * that had no time to spare (no disk to wait for) waits for a few
	 * microseconds at most. */
	__atomic_store_n(&p->stop_push, true, __ATOMIC_RELAXED);
	while (p->state == PUSH_BUSY)
		pthread_cond_wait(&p->done, &p->lock);
	/* Still queued: called off, the pages untouched (and no version's
	 * until their next reader drops them). */
	pushed = p->state == PUSH_DONE && p->rc == 0;
	p->state = PUSH_IDLE;
	__atomic_store_n(&p->stop_push, false, __ATOMIC_RELAXED);
	p->buf = NULL;
	pthread_mutex_unlock(&p->lock);
	if (pushed && f)
		h->pushed = node_pages_committed(&ctx->nodes, h->node, ticket,
						 f->attr.version, f->layer);
}
