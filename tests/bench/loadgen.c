/*
 * loadgen.c - the load generator of `make bench` (tests/bench/run builds it
 * with cc -O2 into a temporary directory).
 *
 * It runs one workload against one directory with plain system calls, the
 * way a shell script or a driver would, and prints the time per operation:
 *
 *   loadgen -w WORKLOAD -d DIR [-n N] [-t THREADS] [-r R] [-P PASSES]
 *           [-p PID] [-T SECONDS] [-D DDIR] [-B BDIR] [-W] [-c CPU]
 *
 *   create     W1: open(O_WRONLY|O_CREAT|O_TRUNC) + write ~60 bytes of JSON
 *              + close, for N new files DIR/f0000000 ... (µs per file)
 *   overwrite  W2: the same on the existing files (O_TRUNC)  (µs per file)
 *   read       W3: open + read to EOF + close of each file     (µs per file)
 *   lstat      W4: lstat of each file                           (µs per file)
 *   list       W5: opendir + readdir to the end + closedir, R times
 *                  (µs per whole listing; it checks >= N entries)
 *   unlink     W6: unlink of each file                          (µs per file)
 *   mixed      W8: THREADS threads (default 2), each doing overwrite then
 *                  read on its own disjoint slice of the N files
 *                  (wall-clock µs per operation, 2N operations in all)
 *   image      W9: N images of 1 MiB (PNG signature, then pseudo-random
 *                  bytes, different in every image): write in 64 KiB
 *                  pieces + close, then open + read back in 64 KiB pieces
 *                  + close, then unlink (untimed).  Prints the mean µs per
 *                  image for the write and for the read.  With -D DDIR,
 *                  each image is also made durable under a name of its
 *                  own in DDIR, not through FUSE, with the fewest steps
 *                  that make a new file and its name durable (created
 *                  under its name, one write, fdatasync, close, fsync of
 *                  DDIR: dsfs names an image file by its token at its
 *                  creation, and a crash's half-written file is its to
 *                  remove), right after its read:
 *                  the mean µs of that too ("durable"), what one image's
 *                  commit must cost at least on the disk under DDIR,
 *                  measured image by image beside the workload itself.
 *                  With -W, no image is read back (only image_write is
 *                  printed): `run roundtrips` counts a read back's
 *                  requests as the difference.  With -B BDIR, each image
 *                  is also written to BDIR (another mount: the bench
 *                  gives passthrough_ll over a tmpfs) the way it was
 *                  written to DIR, right after it is made durable, and
 *                  removed, untimed: the mean µs of those writes too
 *                  ("beside_write"), the reference's write measured
 *                  image by image beside the workload.  With -c CPU,
 *                  the work a FUSE daemon pinned to CPU would do is done
 *                  on that CPU, the rest on loadgen's own: with -D, the
 *                  durable file is made there (a commit syncs on the
 *                  daemon's CPU, which may not be the one the disk's
 *                  interrupts reach); without it, each image is written
 *                  there and read back here (a FUSE filesystem fills the
 *                  pages on the daemon's CPU, and its reader copies them
 *                  out on its own).
 *   walk       readdir of DIR, lstat of every entry, read of every R-th
 *              (R default 100): a tour of a big store (µs per entry)
 *   wait       wait until DIR exists (a mount is ready), at most N seconds
 *              (default 120), or until process -p PID has exited (then it
 *              fails); print the wall clock in µs since the epoch
 *
 * With -P PASSES the workload runs that many times in a row and the last
 * pass is reported (create and unlink only make sense once).  With
 * -T SECONDS, create, overwrite, read, lstat and unlink give up once that
 * much time has passed: they print "NAME timeout FILES-DONE" and exit 3.
 *
 * Output: one line per figure, "NAME VALUE", e.g. "create 152.31" or
 * "image_write 1430.2" and "image_read 88.1".  Any failed system call is
 * reported on stderr with the file and the errno, and the exit status is 1.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IMG_SIZE (1024 * 1024)
#define IMG_PIECE (64 * 1024)

static const char *dir;
static const char *ddir; /* -D: image's durable reference */
static const char *bdir; /* -B: the image written beside, elsewhere */
static int no_readback;	  /* -W: images are written only */
static int daemon_cpu = -1; /* -c: the CPU of a daemon's share of W9 */
static long nfiles = 10000;
static int nthreads = 2;
static long reps = 0; /* -r: listings for list, stride for walk */
static int passes = 1;
static long waitpid_arg; /* -p: the daemon being waited for */
static double deadline;  /* -T: give up after this (now_us()), 0: never */

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* -T: past the deadline, say so ("create timeout I") and exit 3. */
static void check_deadline(const char *w, long i)
{
	if (deadline > 0 && (i & 127) == 0 && now_us() > deadline) {
		printf("%s timeout %ld\n", w, i);
		exit(3);
	}
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "loadgen: %s %s: %s\n", what, path ? path : "",
		strerror(errno));
	exit(1);
}

static void name_of(long i, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/f%07ld", dir, i);
}

/* About 60 bytes of JSON; `gen` changes the value so that an overwrite
 * really changes the content. */
static int json_of(long i, int gen, char *buf, size_t cap)
{
	return snprintf(buf, cap,
			"{\"id\": %ld, \"name\": \"sensor-%ld\", "
			"\"value\": %d.5, \"ok\": true}\n",
			i, i, gen);
}

static void write_one(long i, int flags, int gen)
{
	char path[4096], buf[128];
	int len = json_of(i, gen, buf, sizeof(buf));
	int fd;

	name_of(i, path, sizeof(path));
	fd = open(path, O_WRONLY | O_TRUNC | flags, 0644);
	if (fd < 0)
		die("open", path);
	if (write(fd, buf, (size_t)len) != len)
		die("write", path);
	if (close(fd) != 0)
		die("close", path);
}

static void read_one(long i)
{
	char path[4096], buf[4096];
	ssize_t n, total = 0;
	int fd;

	name_of(i, path, sizeof(path));
	fd = open(path, O_RDONLY);
	if (fd < 0)
		die("open", path);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	if (n < 0)
		die("read", path);
	if (total < 2 || (total <= (ssize_t)sizeof(buf) && buf[0] != '{')) {
		errno = EIO;
		die("read (unexpected content)", path);
	}
	if (close(fd) != 0)
		die("close", path);
}

static void lstat_one(long i)
{
	char path[4096];
	struct stat st;

	name_of(i, path, sizeof(path));
	if (lstat(path, &st) != 0)
		die("lstat", path);
}

static void unlink_one(long i)
{
	char path[4096];

	name_of(i, path, sizeof(path));
	if (unlink(path) != 0)
		die("unlink", path);
}

static long list_once(const char *d)
{
	DIR *dp = opendir(d);
	struct dirent *de;
	long count = 0;

	if (!dp)
		die("opendir", d);
	errno = 0;
	while ((de = readdir(dp)) != NULL)
		count++;
	if (errno)
		die("readdir", d);
	closedir(dp);
	return count;
}

/* ---- W8 ------------------------------------------------------------ */

struct slice {
	long from, to;
	double t0, t1; /* when this thread started and ended its work */
};

static pthread_barrier_t start_line;

static void *mixed_thread(void *arg)
{
	struct slice *s = arg;
	long i;

	pthread_barrier_wait(&start_line);
	s->t0 = now_us();
	for (i = s->from; i < s->to; i++)
		write_one(i, 0, 7);
	for (i = s->from; i < s->to; i++)
		read_one(i);
	s->t1 = now_us();
	return NULL;
}

static double run_mixed(void)
{
	pthread_t tid[64];
	struct slice sl[64];
	double t0, t1;
	int k;

	if (nthreads < 1 || nthreads > 64)
		nthreads = 2;
	pthread_barrier_init(&start_line, NULL, (unsigned)nthreads + 1);
	for (k = 0; k < nthreads; k++) {
		sl[k].from = nfiles * k / nthreads;
		sl[k].to = nfiles * (k + 1) / nthreads;
		if (pthread_create(&tid[k], NULL, mixed_thread, &sl[k]) != 0)
			die("pthread_create", NULL);
	}
	pthread_barrier_wait(&start_line);
	for (k = 0; k < nthreads; k++)
		pthread_join(tid[k], NULL);
	/* From the first thread's start to the last one's end: the threads
	 * may all be done before this one runs again (one CPU). */
	t0 = sl[0].t0;
	t1 = sl[0].t1;
	for (k = 1; k < nthreads; k++) {
		if (sl[k].t0 < t0)
			t0 = sl[k].t0;
		if (sl[k].t1 > t1)
			t1 = sl[k].t1;
	}
	return (t1 - t0) / (2.0 * (double)nfiles);
}

/* ---- W9 ------------------------------------------------------------ */

static uint64_t rng;

static uint64_t xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fill_image(unsigned char *img)
{
	static const unsigned char sig[8] = {0x89, 'P', 'N', 'G',
					     0x0d, 0x0a, 0x1a, 0x0a};
	size_t off;

	memcpy(img, sig, sizeof(sig));
	for (off = sizeof(sig); off + 8 <= IMG_SIZE; off += 8) {
		uint64_t r = xorshift();
		memcpy(img + off, &r, 8);
	}
}

/* Run on CPU cpu from now on (-1: where loadgen started). */
static void run_on(int cpu)
{
	static cpu_set_t own;
	static int saved;
	cpu_set_t one;

	if (!saved) {
		if (sched_getaffinity(0, sizeof(own), &own) != 0)
			die("sched_getaffinity", NULL);
		saved = 1;
	}
	CPU_ZERO(&one);
	if (cpu >= 0)
		CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof(one), cpu >= 0 ? &one : &own) != 0)
		die("sched_setaffinity", NULL);
}

/* img made durable as DDIR/durN: µs taken.  The file is removed, untimed. */
static double durable_one(const unsigned char *img, long i)
{
	char path[4096];
	double t0;
	int fd, dfd;

	snprintf(path, sizeof(path), "%s/dur%04ld", ddir, i);
	if (daemon_cpu >= 0)
		run_on(daemon_cpu);
	dfd = open(ddir, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		die("open", ddir);
	t0 = now_us();
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		die("open", path);
	if (write(fd, img, IMG_SIZE) != IMG_SIZE)
		die("write", path);
	if (fdatasync(fd) != 0)
		die("fdatasync", path);
	if (close(fd) != 0)
		die("close", path);
	if (fsync(dfd) != 0)
		die("fsync", ddir);
	t0 = now_us() - t0;
	close(dfd);
	if (daemon_cpu >= 0)
		run_on(-1);
	if (unlink(path) != 0)
		die("unlink", path);
	return t0;
}

/* img written to path as W9 writes it (open, 64 KiB writes, close): µs. */
static double write_image(const unsigned char *img, const char *path)
{
	double t0 = now_us();
	size_t off;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("open", path);
	for (off = 0; off < IMG_SIZE; off += IMG_PIECE)
		if (write(fd, img + off, IMG_PIECE) != IMG_PIECE)
			die("write", path);
	if (close(fd) != 0)
		die("close", path);
	return now_us() - t0;
}

static void run_image(void)
{
	unsigned char *img = malloc(IMG_SIZE), *back = malloc(IMG_SIZE);
	double wsum = 0, rsum = 0, dsum = 0, bsum = 0, t0;
	char path[4096];
	long i;
	size_t off;
	ssize_t n;
	int fd;

	if (!img || !back)
		die("malloc", NULL);
	rng = ((uint64_t)getpid() << 32) ^ (uint64_t)now_us() ^ 0x9e3779b97f4a7c15ULL;
	for (i = 0; i < nfiles; i++) {
		fill_image(img);
		snprintf(path, sizeof(path), "%s/img%04ld.png", dir, i);

		/* Without a durable reference, -c puts the write, and so the
		 * filling of the pages, on the daemon's CPU. */
		if (daemon_cpu >= 0 && !ddir)
			run_on(daemon_cpu);
		wsum += write_image(img, path);
		if (daemon_cpu >= 0 && !ddir)
			run_on(-1);
		if (no_readback)
			goto written;

		t0 = now_us();
		fd = open(path, O_RDONLY);
		if (fd < 0)
			die("open", path);
		off = 0;
		while (off < IMG_SIZE &&
		       (n = read(fd, back + off, IMG_PIECE)) > 0)
			off += (size_t)n;
		if (off < IMG_SIZE) {
			errno = EIO;
			die("read (short)", path);
		}
		if (close(fd) != 0)
			die("close", path);
		rsum += now_us() - t0;

		if (memcmp(img, back, IMG_SIZE) != 0) {
			errno = EIO;
			die("read (different bytes)", path);
		}
	written:
		if (unlink(path) != 0)
			die("unlink", path);
		if (ddir)
			dsum += durable_one(img, i);
		if (bdir) {
			snprintf(path, sizeof(path), "%s/img%04ld.png", bdir, i);
			bsum += write_image(img, path);
			if (unlink(path) != 0)
				die("unlink", path);
		}
	}
	printf("image_write %.2f\n", wsum / nfiles);
	if (!no_readback)
		printf("image_read %.2f\n", rsum / nfiles);
	if (ddir)
		printf("durable %.2f\n", dsum / nfiles);
	if (bdir)
		printf("beside_write %.2f\n", bsum / nfiles);
	free(img);
	free(back);
}

/* ---- walk ---------------------------------------------------------- */

static void run_walk(void)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	char path[4096];
	struct stat st;
	long count = 0, stride = reps > 0 ? reps : 100;
	double t0 = now_us();

	if (!dp)
		die("opendir", dir);
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) != 0)
			die("lstat", path);
		if (count % stride == 0) {
			char buf[4096];
			int fd = open(path, O_RDONLY);

			if (fd < 0)
				die("open", path);
			while (read(fd, buf, sizeof(buf)) > 0)
				;
			close(fd);
		}
		count++;
	}
	closedir(dp);
	printf("walk %.2f\nwalk_entries %ld\n",
	       count ? (now_us() - t0) / count : 0.0, count);
}

/* Running, neither gone nor a zombie. */
static int alive(long pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

static void run_wait(void)
{
	struct stat st;
	struct timespec ts;
	double limit = now_us() + (nfiles > 0 ? nfiles : 120) * 1e6;

	while (lstat(dir, &st) != 0) {
		if (now_us() > limit) {
			errno = ETIMEDOUT;
			die("wait", dir);
		}
		if (waitpid_arg > 0 && !alive(waitpid_arg)) {
			errno = ESRCH;
			die("wait: the daemon exited before the mount was ready:",
			    dir);
		}
		usleep(200);
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	printf("%.0f\n", ts.tv_sec * 1e6 + ts.tv_nsec / 1e3);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: loadgen -w create|overwrite|read|lstat|list|unlink|"
		"mixed|image|walk|wait -d DIR\n"
		"               [-n N] [-t THREADS] [-r R] [-P PASSES] [-p PID]\n"
		"               [-T SECONDS] [-D DDIR] [-B BDIR] [-W] [-c CPU]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *w = NULL;
	double t0, us = 0;
	long i, got;
	int c, p;

	while ((c = getopt(argc, argv, "w:d:n:t:r:P:p:T:D:B:Wc:")) != -1) {
		switch (c) {
		case 'w': w = optarg; break;
		case 'd': dir = optarg; break;
		case 'n': nfiles = atol(optarg); break;
		case 't': nthreads = atoi(optarg); break;
		case 'r': reps = atol(optarg); break;
		case 'P': passes = atoi(optarg); break;
		case 'p': waitpid_arg = atol(optarg); break;
		case 'T': deadline = atof(optarg); break;
		case 'D': ddir = optarg; break;
		case 'B': bdir = optarg; break;
		case 'W': no_readback = 1; break;
		case 'c': daemon_cpu = atoi(optarg); break;
		default: usage();
		}
	}
	if (!w || !dir || nfiles < 0)
		usage();
	if (passes < 1)
		passes = 1;
	if (deadline > 0)
		deadline = now_us() + deadline * 1e6;
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (strcmp(w, "wait") == 0) {
		run_wait();
		return 0;
	}
	if (strcmp(w, "image") == 0) {
		run_image();
		return 0;
	}
	if (strcmp(w, "walk") == 0) {
		run_walk();
		return 0;
	}
	if (nfiles == 0)
		usage();
	for (p = 0; p < passes; p++) {
		t0 = now_us();
		if (strcmp(w, "create") == 0) {
			for (i = 0; i < nfiles; i++) {
				check_deadline(w, i);
				write_one(i, O_CREAT, 0);
			}
		} else if (strcmp(w, "overwrite") == 0) {
			for (i = 0; i < nfiles; i++) {
				check_deadline(w, i);
				write_one(i, 0, p + 1);
			}
		} else if (strcmp(w, "read") == 0) {
			for (i = 0; i < nfiles; i++) {
				check_deadline(w, i);
				read_one(i);
			}
		} else if (strcmp(w, "lstat") == 0) {
			for (i = 0; i < nfiles; i++) {
				check_deadline(w, i);
				lstat_one(i);
			}
		} else if (strcmp(w, "unlink") == 0) {
			for (i = 0; i < nfiles; i++) {
				check_deadline(w, i);
				unlink_one(i);
			}
		} else if (strcmp(w, "list") == 0) {
			long r, n = reps > 0 ? reps : 20;

			for (r = 0; r < n; r++) {
				got = list_once(dir);
				if (got < nfiles) {
					fprintf(stderr,
						"loadgen: list %s: %ld entries,"
						" expected %ld\n",
						dir, got, nfiles);
					return 1;
				}
			}
			us = (now_us() - t0) / (double)n;
			continue;
		} else if (strcmp(w, "mixed") == 0) {
			us = run_mixed();
			continue;
		} else {
			usage();
		}
		us = (now_us() - t0) / (double)nfiles;
	}
	printf("%s %.2f\n", w, us);
	return 0;
}
