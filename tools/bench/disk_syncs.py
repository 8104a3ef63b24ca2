#!/usr/bin/python3
"""disk_syncs.py [--threads N] [--same-file] [--mode buffered|dsync|direct] [--bytes B]
[--seconds S] [--dir DIR] -- what a synced write costs on this machine's disk,
apart from any node (docs/BENCHMARKS.md, issue 14, fourteenth step).

Each of N threads writes B bytes (default 16384, about a put commit's log
record) in turn over a 1 MiB region already written, then makes it durable:
buffered (pwrite + fdatasync, as the write-ahead log does), dsync (O_DSYNC
pwrite) or direct (O_DIRECT | O_DSYNC, page-aligned). With --same-file the
threads share one file (at different offsets), as two overlapping commits of
one log would. Prints the synced writes per second over all threads, their
p50/p99 latency, and the CPU time per synced write: this process's (user +
system) and the whole machine's (busy time from /proc/stat, which includes the
kernel's interrupt and block work and anything else running).
"""
import argparse
import mmap
import os
import threading
import time


def machine_busy_ticks():
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:]))
    return sum(v) - v[3] - v[4]  # all but idle and iowait


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--same-file", action="store_true")
    ap.add_argument("--mode", choices=["buffered", "dsync", "direct"], default="buffered")
    ap.add_argument("--bytes", type=int, default=16384)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--dir", default="/tmp/kv-disk-syncs")
    a = ap.parse_args()
    region = 1 << 20
    os.makedirs(a.dir, exist_ok=True)
    files = 1 if a.same_file else a.threads
    size = region * (a.threads if a.same_file else 1)
    paths = [os.path.join(a.dir, f"f{i}") for i in range(files)]
    for p in paths:
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
        os.pwrite(fd, b"\0" * size, 0)
        os.fsync(fd)
        os.close(fd)
    flags = os.O_RDWR
    if a.mode == "dsync":
        flags |= os.O_DSYNC
    if a.mode == "direct":
        flags |= os.O_DIRECT | os.O_DSYNC
    latencies = [[] for _ in range(a.threads)]

    def run(i):
        fd = os.open(paths[0 if a.same_file else i], flags)
        buf = mmap.mmap(-1, a.bytes)  # page-aligned, as O_DIRECT needs
        buf.write(b"x" * a.bytes)
        base = i * region if a.same_file else 0
        off = 0
        end = time.time() + a.seconds
        while time.time() < end:
            t = time.perf_counter()
            os.pwrite(fd, buf, base + off)
            if a.mode == "buffered":
                os.fdatasync(fd)
            latencies[i].append(time.perf_counter() - t)
            off = (off + a.bytes) % (region - a.bytes + 1) // 4096 * 4096
        os.close(fd)

    busy0, t0 = machine_busy_ticks(), os.times()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t1, busy1 = os.times(), machine_busy_ticks()
    for p in paths:
        os.unlink(p)
    lat = sorted(x for per in latencies for x in per)
    n = len(lat)
    own_us = (t1.user + t1.system - t0.user - t0.system) / n * 1e6
    machine_us = (busy1 - busy0) / os.sysconf("SC_CLK_TCK") / n * 1e6
    print(f"{a.mode} threads {a.threads}{' same file' if a.same_file else ''}: "
          f"{n / a.seconds:.0f} synced writes/s, p50 {lat[n // 2] * 1e3:.3f} ms, "
          f"p99 {lat[int(n * 0.99)] * 1e3:.3f} ms, CPU per write {own_us:.1f} us own, "
          f"{machine_us:.1f} us machine")


if __name__ == "__main__":
    main()
