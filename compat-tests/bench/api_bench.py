#!/usr/bin/env python3
"""Side-by-side API benchmark of one Docker-API daemon (shoald or dockerd).

Measures, on a daemon that is already a one-node swarm manager:
  commits  sequential POST /secrets/create, then DELETE /secrets/{id} of the
           same secrets: commits per second and p50/p99 latency (each request
           is one durable raft commit on both daemons)
  rss      resident memory of the daemon process (idle, then with data loaded);
           with --extra-pid also of a helper process (dockerd's containerd)
  lists    GET /services and GET /tasks latency with S services of R replicas
           (tasks are kept pending by an unsatisfiable constraint, so neither
           daemon starts containers), measured once the daemon's CPU use has
           dropped below 5% for 3 s (bounded by --settle-max)
Prints one JSON object. Bounded: every loop has a fixed count.
"""
import argparse
import http.client
import json
import os
import socket
import statistics
import sys
import time


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(120)
        s.connect(self.path)
        self.sock = s


def call(conn, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    conn.request(method, "/v1.41" + path, body=data, headers=headers)
    r = conn.getresponse()
    payload = r.read()
    if r.status >= 300:
        raise RuntimeError(f"{method} {path}: {r.status} {payload[:200]!r}")
    return payload


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def summary(lat, total):
    return {"n": len(lat), "per_sec": len(lat) / total,
            "p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3}


def bench_commits(conn, n, tag):
    """n secret creates, then n removes of the same secrets."""
    lat, ids = [], []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        r = call(conn, "POST", "/secrets/create",
                 {"Name": f"bench-{tag}-{i}", "Data": "c2VjcmV0", "Labels": {}})
        lat.append(time.perf_counter() - t)
        ids.append(json.loads(r)["ID"])
    create = summary(lat, time.perf_counter() - t0)
    lat = []
    t0 = time.perf_counter()
    for sid in ids:
        t = time.perf_counter()
        call(conn, "DELETE", f"/secrets/{sid}")
        lat.append(time.perf_counter() - t)
    return create, summary(lat, time.perf_counter() - t0)


def load_services(conn, services, replicas, image):
    for i in range(services):
        call(conn, "POST", "/services/create", {
            "Name": f"bench{i}",
            "TaskTemplate": {
                "ContainerSpec": {"Image": image, "Args": ["sleep", "3600"]},
                # No node has this label: tasks stay pending on both daemons.
                "Placement": {"Constraints": ["node.labels.never==1"]},
            },
            "Mode": {"Replicated": {"Replicas": replicas}},
        })


def wait_tasks(conn, want, secs):
    deadline = time.time() + secs
    n = 0
    while time.time() < deadline:
        n = len(json.loads(call(conn, "GET", "/tasks")))
        if n >= want:
            return n
        time.sleep(0.5)
    return n


def cpu_secs(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid, max_secs, busy=0.05, quiet=3):
    """Waits until the daemon uses < `busy` of a CPU for `quiet` seconds in a
    row (its control loops have caught up); returns the seconds waited."""
    t0 = time.perf_counter()
    calm = 0
    last = cpu_secs(pid)
    while time.perf_counter() - t0 < max_secs:
        time.sleep(1)
        now = cpu_secs(pid)
        calm = calm + 1 if now - last < busy else 0
        last = now
        if calm >= quiet:
            break
    return time.perf_counter() - t0


def bench_list(conn, path, n):
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        call(conn, "GET", path)
        lat.append(time.perf_counter() - t)
    return {"n": n, "p50_ms": statistics.median(lat) * 1e3, "p99_ms": pct(lat, 99) * 1e3}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--extra-pid", type=int, default=0,
                    help="also report this process's RSS (dockerd's containerd)")
    ap.add_argument("--commits", type=int, default=300)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--replicas", type=int, default=10)
    ap.add_argument("--list-requests", type=int, default=50)
    ap.add_argument("--settle-max", type=int, default=300,
                    help="max seconds to wait for the daemon to go idle after loading")
    ap.add_argument("--image", default="shoal-test/busybox:latest")
    ap.add_argument("--tag", default="x")
    a = ap.parse_args()
    conn = UnixConn(a.socket)
    out = {"args": vars(a), "rss_idle_mb": rss_mb(a.pid),
           "extra_rss_idle_mb": rss_mb(a.extra_pid) if a.extra_pid else None}
    out["commits"], out["removes"] = bench_commits(conn, a.commits, a.tag)
    t = time.perf_counter()
    load_services(conn, a.services, a.replicas, a.image)
    out["service_create_per_sec"] = a.services / (time.perf_counter() - t)
    out["tasks_seen"] = wait_tasks(conn, a.services * a.replicas, 600)
    out["tasks_all_created_s"] = time.perf_counter() - t
    # Let the control loops (allocator, scheduler) catch up before measuring
    # reads, so list latency is not measured against background work.
    out["settle_s"] = wait_idle(a.pid, a.settle_max)
    out["get_services"] = bench_list(conn, "/services", a.list_requests)
    out["get_services_status"] = bench_list(conn, "/services?status=true", a.list_requests)
    out["get_tasks"] = bench_list(conn, "/tasks", a.list_requests)
    out["rss_loaded_mb"] = rss_mb(a.pid)
    out["extra_rss_loaded_mb"] = rss_mb(a.extra_pid) if a.extra_pid else None
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
