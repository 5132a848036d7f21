#!/usr/bin/env python3
"""Side-by-side API benchmark of one Docker-API daemon (shoald or dockerd).

Measures, on a daemon that is already a one-node swarm manager:
  commits  sequential POST /secrets/create: commits per second and p99 latency
           (each is one durable raft commit on both daemons)
  rss      resident memory of the daemon process (idle, then with data loaded)
  lists    GET /services and GET /tasks latency with S services of R replicas
           (tasks are kept pending by an unsatisfiable constraint, so neither
           daemon starts containers)
Prints one JSON object. Bounded: every loop has a fixed count.
"""
import argparse
import http.client
import json
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


def bench_commits(conn, n, tag):
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        call(conn, "POST", "/secrets/create",
             {"Name": f"bench-{tag}-{i}", "Data": "c2VjcmV0", "Labels": {}})
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
    return {"n": n, "per_sec": n / total, "p50_ms": pct(lat, 50) * 1e3,
            "p99_ms": pct(lat, 99) * 1e3}


def load_services(conn, services, replicas, image):
    for i in range(services):
        call(conn, "POST", "/services/create", {
            "Name": f"bench{i}",
            "TaskTemplate": {
                "ContainerSpec": {"Image": image, "Args": ["sleep", "3600"]},
                "Placement": {"Constraints": ["node.labels.bench==never"]},
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
        time.sleep(1)
    return n


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
    ap.add_argument("--commits", type=int, default=300)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--replicas", type=int, default=10)
    ap.add_argument("--list-requests", type=int, default=50)
    ap.add_argument("--image", default="shoal-test/busybox:latest")
    ap.add_argument("--tag", default="x")
    a = ap.parse_args()
    conn = UnixConn(a.socket)
    out = {"rss_idle_mb": rss_mb(a.pid)}
    out["commits"] = bench_commits(conn, a.commits, a.tag)
    t = time.perf_counter()
    load_services(conn, a.services, a.replicas, a.image)
    out["service_create_per_sec"] = a.services / (time.perf_counter() - t)
    out["tasks_seen"] = wait_tasks(conn, a.services * a.replicas, 600)
    out["get_services"] = bench_list(conn, "/services", a.list_requests)
    out["get_services_status"] = bench_list(conn, "/services?status=true", a.list_requests)
    out["get_tasks"] = bench_list(conn, "/tasks", a.list_requests)
    out["rss_loaded_mb"] = rss_mb(a.pid)
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
