#!/usr/bin/env python3
"""hosts_probe.py - the load of tests/bench/hosts, two measurements of
several dsfs hosts on one shared runtime.

  hosts_probe.py latency read|stat FILE_A FILE_B N
      N changes of FILE_A (written through host A: open O_TRUNC, write,
      close); a reader process polls FILE_B (the same file through host B)
      in a tight loop, with open/read/close ("read": close-to-open) or
      with stat ("stat": the size, which alternates between 2 and 3 bytes,
      9 and 10 bytes, so that only an invalidation of B's cached attributes
      shows it).
      Prints one line per change: microseconds from the writer's close()
      returning to the reader first seeing the new value (negative when it
      saw it before close() returned), and from close() being called.
      The writer waits for the reader to see a change before making the
      next one, so every change is timed alone.

  hosts_probe.py counter SECONDS FILE...
      One process per FILE (the same kv file through its host's mount),
      each looping for SECONDS: flock(LOCK_EX) on FILE, read the number,
      write it + 1 (open O_TRUNC, write, close), unlock; as flock(1) and a
      shell would.  Prints the increments made in total and the final
      value read back, which must be the start value plus that total.

Both use CLOCK_MONOTONIC, which all processes of the machine share.
"""
import fcntl
import os
import sys
import time


def read_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 64)
    finally:
        os.close(fd)


def write_file(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def value(i):
    """Change i's content: unique digits, and a size that alternates."""
    return b"%8d%s\n" % (i, b" " * (i % 2))


def seen(mode, path, i):
    if mode == "stat":
        return os.stat(path).st_size == len(value(i))
    return read_file(path) == value(i)


def latency(mode, file_a, file_b, n):
    write_file(file_a, value(0))
    # The reader must have the old value cached before the first change.
    while True:
        try:
            if seen(mode, file_b, 0):
                break
        except FileNotFoundError:
            time.sleep(0.01)
    seen_r, seen_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(seen_r)
        for i in range(1, n + 1):
            while not seen(mode, file_b, i):
                pass
            t = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            os.write(seen_w, b"%d\n" % t)
        os._exit(0)
    os.close(seen_w)
    seen_at = os.fdopen(seen_r)
    for i in range(1, n + 1):
        fd = os.open(file_a, os.O_WRONLY | os.O_TRUNC)
        os.write(fd, value(i))
        t_call = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        os.close(fd)
        t_ret = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        t_seen = int(seen_at.readline())
        print("%.1f %.1f" % ((t_seen - t_ret) / 1000.0,
                             (t_seen - t_call) / 1000.0), flush=True)
    _, status = os.waitpid(pid, 0)
    return 0 if status == 0 else 1


def increment(path, deadline):
    count = 0
    while time.monotonic() < deadline:
        lock = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            number = int(read_file(path))
            write_file(path, b"%d\n" % (number + 1))
        finally:
            os.close(lock)  # the last close releases the lock
        count += 1
    return count


def counter(seconds, files):
    start = int(read_file(files[0]))
    deadline = time.monotonic() + seconds
    pipes = []
    for path in files:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.write(w, b"%d\n" % increment(path, deadline))
            os._exit(0)
        os.close(w)
        pipes.append((pid, r))
    total = 0
    for pid, r in pipes:
        with os.fdopen(r) as f:
            total += int(f.read() or "0")
        _, status = os.waitpid(pid, 0)
        if status != 0:
            print("a counter process failed", file=sys.stderr)
            return 1
    final = int(read_file(files[0]))
    print(total, final - start)
    return 0 if final - start == total else 1


def main(argv):
    if len(argv) == 6 and argv[1] == "latency" and argv[2] in ("read", "stat"):
        return latency(argv[2], argv[3], argv[4], int(argv[5]))
    if len(argv) >= 4 and argv[1] == "counter":
        return counter(float(argv[2]), argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
