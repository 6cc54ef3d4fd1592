"""hosts_race.py - one process per host, started together, for the races
of cluster.bats: race(make, mounts) runs make(mount) in each and returns
{mount: what it returned}, or exits naming the hosts whose make raised."""
import sys
from multiprocessing import Barrier, Process, Queue


def _one(make, mnt, bar, out):
    bar.wait()
    try:
        out.put((mnt, None, make(mnt)))
    except Exception as e:  # reported, with the host, by race()
        out.put((mnt, repr(e), None))


def race(make, mounts):
    bar, out = Barrier(len(mounts)), Queue()
    ps = [Process(target=_one, args=(make, m, bar, out)) for m in mounts]
    for p in ps:
        p.start()
    res = [out.get() for _ in ps]
    for p in ps:
        p.join()
    failed = [(m, e) for m, e, _ in res if e]
    if failed:
        sys.exit("unexpected errors: %r" % failed)
    return {m: r for m, _, r in res}
