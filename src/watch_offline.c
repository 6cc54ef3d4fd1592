/*
 * watch_offline.c - dsfsctl watch on a store that is not mounted and
 * whose runtime layer is local (SQLite): nothing but dsfsctl can change
 * such a store, so dsfsctl itself tells the watchers.
 *
 * A watcher binds a datagram socket STORE/watchers/PID.sock.  A dsfsctl
 * command that may change the store looks at that directory when it opens
 * the runtime layer: with nobody there it changes nothing and costs one
 * opendir(); otherwise the layer is observed (layer_observe()) and every
 * committed change is sent to each socket as one datagram, without ever
 * waiting: a watcher that does not read loses what its socket buffer
 * cannot hold.  The sender counts, per watcher, what it could not send,
 * and the next datagram that gets through carries that count, so that
 * the watcher says {"lost":N} before the line that follows the loss, as
 * the daemon does.  A command's last word is an "end" datagram with what
 * is still uncounted; if the watcher's socket stays full for a second it
 * is appended to STORE/watchers/PID.lost instead, which the watcher reads
 * every second.  A socket nobody listens on any more (its watcher was
 * killed) is removed by the first sender that finds it so.
 *
 * A datagram: "lost layer version sec nsec op\0key\0from\0" (numbers in
 * decimal, separated by spaces; key and from may be empty, for a change
 * that is about no entry and for all but a rename).  Op "end" shows
 * nothing: it only counts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "layer.h"
#include "watch.h"

#define DGRAM_MAX (3 * DSFS_KEY_MAX + 128)

/* The watchers a sender found when it opened the layer. */
struct senders {
	int fd; /* an unbound datagram socket */
	char **paths;
	uint64_t *lost; /* per watcher: not sent, not yet told */
	size_t n;
	bool sent; /* a change was offered: an "end" is due */
};

static int sock_addr(const char *path, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(a->sun_path))
		return -ENAMETOOLONG;
	memcpy(a->sun_path, path, strlen(path) + 1);
	return 0;
}

static void senders_free(struct senders *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->paths[i]);
	free(s->paths);
	free(s->lost);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

/* The sockets in STORE/watchers: NULL when there are none. */
static struct senders *senders_find(const char *store)
{
	struct senders *s;
	struct dirent *d;
	char dir[PATH_MAX], **grown;
	DIR *dp;

	snprintf(dir, sizeof(dir), "%s/%s", store, WATCH_OFFLINE_DIR);
	dp = opendir(dir);
	if (!dp)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		goto out;
	s->fd = -1;
	while ((d = readdir(dp))) {
		size_t len = strlen(d->d_name);

		if (len < 6 || strcmp(d->d_name + len - 5, ".sock") != 0)
			continue;
		grown = realloc(s->paths, (s->n + 1) * sizeof(*s->paths));
		if (!grown)
			break;
		s->paths = grown;
		if (asprintf(&s->paths[s->n], "%s/%s", dir, d->d_name) < 0)
			break;
		s->n++;
	}
	if (s->n) {
		s->lost = calloc(s->n, sizeof(*s->lost));
		if (s->lost)
			s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	}
	if (s->fd < 0) {
		senders_free(s);
		s = NULL;
	}
out:
	closedir(dp);
	return s;
}

/* c as a datagram for watcher i into buf: its length, 0 if too long. */
static size_t encode(const struct senders *s, size_t i,
		     const struct watch_change *c, char *buf, size_t cap)
{
	int n, k, f;

	n = snprintf(buf, cap, "%llu %d %llu %lld %ld %s",
		     (unsigned long long)s->lost[i], c->layer,
		     (unsigned long long)c->version, (long long)c->time.tv_sec,
		     c->time.tv_nsec, c->op);
	if (n < 0 || (size_t)n >= cap)
		return 0;
	k = snprintf(buf + n + 1, cap - (size_t)n - 1, "%s",
		     c->key ? c->key : "");
	if (k < 0 || (size_t)n + 1 + (size_t)k >= cap)
		return 0;
	f = snprintf(buf + n + k + 2, cap - (size_t)(n + k) - 2, "%s",
		     c->from ? c->from : "");
	if (f < 0 || (size_t)n + (size_t)k + (size_t)f + 2 >= cap)
		return 0;
	return (size_t)n + (size_t)k + (size_t)f + 3;
}

/* To every watcher, waiting only if flags lack MSG_DONTWAIT; what cannot
 * be sent is counted for the next.  A socket with no one behind goes. */
static void send_all(struct senders *s, const struct watch_change *c, int flags)
{
	char buf[DGRAM_MAX];
	struct sockaddr_un a;
	size_t i, len;

	for (i = 0; i < s->n; i++) {
		len = encode(s, i, c, buf, sizeof(buf));
		if (!len || sock_addr(s->paths[i], &a) != 0)
			continue;
		if (sendto(s->fd, buf, len, flags, (struct sockaddr *)&a,
			   sizeof(a)) >= 0) {
			s->lost[i] = 0;
			continue;
		}
		if (errno == ECONNREFUSED || errno == ENOENT)
			unlink(s->paths[i]);
		else if (strcmp(c->op, "end") != 0)
			s->lost[i]++;
	}
}

/* What an "end" could not tell goes to the watcher's .lost file. */
static void told_late(const char *sock, uint64_t lost)
{
	char path[PATH_MAX], line[32];
	size_t len = strlen(sock) - 5; /* without ".sock" */
	int fd, n;

	snprintf(path, sizeof(path), "%.*s.lost", (int)len, sock);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)lost);
	if (write(fd, line, (size_t)n) != n) {
		/* nothing more to be done: the count is lost too */
	}
	close(fd);
}

static void sent(void *arg, struct dsfs_layer *inner,
		 const struct layer_event *ev)
{
	struct watch_change c = {.key = ev->key,
				 .from = ev->from,
				 .layer = L_RUNTIME,
				 .op = watch_op_name(ev->op),
				 .version = ev->version,
				 .origin = "dsfsctl"};
	struct dsfs_attr a;

	if (!c.op)
		return;
	if (ev->key && ev->op != LAYER_EV_REMOVE && !c.version &&
	    layer_lookup(inner, ev->key, &a) == 0)
		c.version = a.version;
	clock_gettime(CLOCK_REALTIME, &c.time);
	((struct senders *)arg)->sent = true;
	send_all(arg, &c, MSG_DONTWAIT);
}

/* The command is done: an "end" datagram tells a watcher how many it
 * sent, so that one that lost the last of them can say so.  It may wait
 * a second for a watcher whose socket is full, never more. */
static void forget(void *arg)
{
	struct senders *s = arg;
	struct timeval second = {1, 0};
	struct watch_change c = {.layer = L_RUNTIME, .op = "end"};
	size_t i;

	if (s->sent) {
		setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &second,
			   sizeof(second));
		clock_gettime(CLOCK_REALTIME, &c.time);
		send_all(s, &c, 0);
	}
	for (i = 0; i < s->n; i++)
		if (s->lost[i])
			told_late(s->paths[i], s->lost[i]);
	senders_free(s);
}

int watch_offline_observe(const char *store, struct dsfs_layer **l)
{
	struct senders *s = senders_find(store);
	struct layer_observer o = {.changed = sent, .done = forget, .arg = s};
	struct dsfs_layer *wrapped;
	int rc;

	if (!s)
		return 0;
	rc = layer_observe(*l, &o, &wrapped);
	if (rc) {
		senders_free(s);
		return rc;
	}
	*l = wrapped;
	return 0;
}

void watch_offline_tell(const char *store, const struct watch_change *c)
{
	struct senders *s = senders_find(store);

	if (s) {
		send_all(s, c, MSG_DONTWAIT);
		senders_free(s);
	}
}

int watch_offline_listen(const char *store, int *fd, char **path)
{
	struct sockaddr_un a;
	char dir[PATH_MAX];
	int rc, size = 4 << 20;

	*fd = -1;
	snprintf(dir, sizeof(dir), "%s/%s", store, WATCH_OFFLINE_DIR);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -errno;
	if (asprintf(path, "%s/%ld.sock", dir, (long)getpid()) < 0)
		return -ENOMEM;
	rc = sock_addr(*path, &a);
	if (rc == 0) {
		*fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		rc = *fd < 0 ? -errno : 0;
	}
	unlink(*path);
	if (rc == 0 && bind(*fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		rc = -errno;
	if (rc == 0) {
		/* Room for a burst (a load) while the reader is slow. */
		setsockopt(*fd, SOL_SOCKET, SO_RCVBUFFORCE, &size,
			   sizeof(size));
		return 0;
	}
	watch_offline_unlisten(*fd, *path);
	*fd = -1;
	*path = NULL;
	return rc;
}

void watch_offline_unlisten(int fd, char *path)
{
	if (fd >= 0)
		close(fd);
	if (path) {
		unlink(path);
		memcpy(path + strlen(path) - 5, ".lost", 6); /* as .sock */
		unlink(path);
	}
	free(path);
}

uint64_t watch_offline_lost_late(const char *path)
{
	char lost[PATH_MAX], taken[PATH_MAX + 8], buf[4096], *line, *save;
	uint64_t sum = 0;
	ssize_t n;
	int fd;

	snprintf(lost, sizeof(lost), "%.*s.lost", (int)strlen(path) - 5, path);
	/* Taken away under another name, so that a sender appending from
	 * now on makes a new file, counted next time (one that opened the
	 * file just before may still write into the taken one, a window of
	 * a few instructions). */
	snprintf(taken, sizeof(taken), "%s.taken", lost);
	if (rename(lost, taken) != 0)
		return 0;
	fd = open(taken, O_RDONLY | O_CLOEXEC);
	unlink(taken);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		sum += strtoull(line, NULL, 10);
	close(fd);
	return sum;
}

/* The next space-separated decimal number of *p into *v. */
static int number(char **p, long long *v)
{
	char *end;

	errno = 0;
	*v = strtoll(*p, &end, 10);
	if (errno || end == *p || *end != ' ')
		return -EINVAL;
	*p = end + 1;
	return 0;
}

int watch_offline_parse(char *buf, size_t len, struct watch_offline_msg *m)
{
	char *p = buf, *key, *from, *end = buf + len;
	long long v[5];
	int i;

	if (len < 3 || buf[len - 1] != '\0')
		return -EINVAL;
	for (i = 0; i < 5; i++)
		if (number(&p, &v[i]) != 0 || v[i] < 0)
			return -EINVAL;
	if (v[1] >= DSFS_NLAYERS || v[4] >= 1000000000)
		return -EINVAL;
	key = (char *)memchr(buf, '\0', len) + 1;
	if (key >= end)
		return -EINVAL;
	from = (char *)memchr(key, '\0', (size_t)(end - key)) + 1;
	if (from >= end)
		return -EINVAL;
	m->lost = (uint64_t)v[0];
	m->c.layer = (int)v[1];
	m->c.version = (uint64_t)v[2];
	m->c.time.tv_sec = (time_t)v[3];
	m->c.time.tv_nsec = (long)v[4];
	m->c.op = p;
	m->c.key = *key ? key : NULL;
	m->c.from = *from ? from : NULL;
	m->c.origin = "dsfsctl";
	return 0;
}
