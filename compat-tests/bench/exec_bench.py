#!/usr/bin/env python3
"""Side-by-side executor benchmark of one Docker-API daemon (shoald or dockerd)
that runs swarm tasks as real containers on containerd.

The daemon must already be a one-node swarm manager with the test image
(compat-tests/scripts/make-test-image.sh) loaded under two tags. Every service
runs `httpd -f -p 80` with a stop grace period of 1 s. Figures, each repeated
--reps times:

  warmup   first task on the fresh daemon (one sample; includes any image
           unpack the daemon does on first use)
  create   POST /services/create of N replicas until N tasks are running
           (Status.State == running), for each N in --sizes; then DELETE
           /services/{id} until containerd holds none of its containers
  replace  kill -9 of the container process of slot 1 (Status.ContainerStatus.PID)
           until a new task of slot 1 is running; once with the default
           restart policy (delay 5 s on both daemons) and once with delay 0
  update   rolling --image update of --update-replicas replicas with
           parallelism 2: from POST /services/{id}/update until all replicas
           run the new image, and until UpdateStatus.State == completed
  density  for each N in --density-sizes: POST /services/create of N
           replicas until all run, with a timeline per task (task created,
           each state first seen in GET /tasks every --density-poll s, and
           the container's create and start events from GET /events); then
           the proportional memory (PSS, /proc/PID/smaps_rollup) of the
           daemon, containerd and the daemon's shims against the same before
           the create, the CPU of each in the create, and the shim count

Progress is read the API way: GET /tasks?filters={"service":[ID]} every
--poll seconds. A task counts as running only if its container process exists
(checked in /proc) and containerd reports it (ctr, in --ctr-namespace).
Prints one JSON object. Bounded: every wait has a deadline (--timeout).
"""
import argparse
import datetime
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(self.path)
        self.sock = s


class Api:
    def __init__(self, path):
        self.conn = UnixConn(path)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        self.conn.request(method, "/v1.41" + path, body=data, headers=headers)
        r = self.conn.getresponse()
        payload = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {payload[:300]!r}")
        return json.loads(payload) if payload else None

    def tasks(self, service_id):
        f = urllib.parse.quote(json.dumps({"service": [service_id]}))
        return self.call("GET", f"/tasks?filters={f}")


def log(*a):
    print("exec_bench:", *a, file=sys.stderr, flush=True)


def cpu_secs(pid):
    """utime + stime of a process, in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pss_kb(pid):
    """Proportional set size of a process, kB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def wall(ts):
    """An RFC 3339 timestamp (nanoseconds allowed) as Unix seconds."""
    if not ts:
        return None
    base, _, rest = ts.partition(".")
    frac, zone = "", "Z"
    if rest:
        digits = ""
        for i, ch in enumerate(rest):
            if not ch.isdigit():
                zone = rest[i:]
                break
            digits += ch
        frac = digits
    else:
        for sep in ("Z", "+", "-"):
            if sep in base[10:]:
                i = base.index(sep, 10)
                base, zone = base[:i], base[i:]
                break
    zone = "+00:00" if zone == "Z" else zone
    t = datetime.datetime.fromisoformat(base + zone).timestamp()
    return t + (float("0." + frac) if frac else 0.0)


class Events:
    """Container create and start events of the daemon, in a thread: task ID
    -> {action: Unix seconds}."""

    def __init__(self, path):
        import threading
        self.seen = {}
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        f = urllib.parse.quote(json.dumps({"type": ["container"]}))
        self.sock.sendall(f"GET /v1.41/events?filters={f} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        buf = b""
        dec = json.JSONDecoder()
        head = True
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            if head:
                if b"\r\n\r\n" not in buf:
                    continue
                buf = buf.split(b"\r\n\r\n", 1)[1]
                head = False
            text = buf.decode(errors="replace")
            i = 0
            while True:
                j = text.find("{", i)
                if j < 0:
                    i = len(text)
                    break
                try:
                    ev, end = dec.raw_decode(text, j)
                except ValueError:
                    i = j
                    break
                i = end
                attrs = (ev.get("Actor") or {}).get("Attributes") or {}
                task = attrs.get("com.docker.swarm.task.id")
                if task and ev.get("Action") in ("create", "start"):
                    self.seen.setdefault(task, {}).setdefault(ev["Action"], ev.get("timeNano", 0) / 1e9)
            buf = text[i:].encode()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


STATES = ["assigned", "accepted", "preparing", "ready", "starting", "running"]


def quantiles(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    q = lambda p: xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]
    return {"p10": q(0.1), "p50": q(0.5), "p90": q(0.9), "max": xs[-1], "n": len(xs)}


def state(t):
    return (t.get("Status") or {}).get("State")


def pid_of(t):
    return ((t.get("Status") or {}).get("ContainerStatus") or {}).get("PID") or 0


def image_of(t):
    return ((t.get("Spec") or {}).get("ContainerSpec") or {}).get("Image", "")


def alive_httpd(pid):
    """The task's PID is a live busybox httpd."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return argv[0] in (b"httpd", b"/bin/httpd")


class Bench:
    def __init__(self, a):
        self.a = a
        self.api = Api(a.socket)
        self.n = 0

    def ctr(self, *args):
        cmd = ["ctr", "--address", self.a.ctr_address, "--namespace", self.a.ctr_namespace, *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
        except subprocess.TimeoutExpired:
            return ""

    def ctr_running(self):
        """containerd task IDs in the daemon's namespace that are RUNNING."""
        out = self.ctr("tasks", "ls")
        return {l.split()[0] for l in out.splitlines()[1:] if l.split() and l.split()[-1] == "RUNNING"}

    def ctr_containers(self):
        return [l.split()[0] for l in self.ctr("containers", "ls").splitlines()[1:] if l.split()]

    def spec(self, name, replicas, image, restart_delay=None):
        s = {
            "Name": name,
            "Labels": {"shoal.bench": "exec"},
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": image,
                    "Args": ["httpd", "-f", "-p", "80"],
                    "StopGracePeriod": 1_000_000_000,
                },
                "ForceUpdate": 0,
            },
            "Mode": {"Replicated": {"Replicas": replicas}},
            # What `docker service create --update-parallelism 2` sends.
            "UpdateConfig": {"Parallelism": 2, "FailureAction": "pause",
                             "MaxFailureRatio": 0, "Order": "stop-first"},
        }
        if restart_delay is not None:
            s["TaskTemplate"]["RestartPolicy"] = {"Condition": "any", "Delay": restart_delay,
                                                  "MaxAttempts": 0}
        return s

    def name(self, kind):
        self.n += 1
        return f"xb-{kind}-{self.n}"

    def running(self, tasks, image=None):
        """Tasks that are running, wanted running and (if given) on `image`."""
        return [t for t in tasks if state(t) == "running" and t.get("DesiredState") == "running"
                and (image is None or image_of(t) == image)]

    def poll_until(self, what, cond):
        """Calls cond() every --poll s until it returns a true value; returns
        (seconds, value). Raises after --timeout."""
        t0 = time.perf_counter()
        deadline = t0 + self.a.timeout
        while True:
            v = cond()
            if v:
                return time.perf_counter() - t0, v
            if time.perf_counter() > deadline:
                raise RuntimeError(f"timeout ({self.a.timeout} s) waiting for {what}")
            time.sleep(self.a.poll)

    def verify(self, tasks):
        """Every task's container process is a live httpd and containerd
        reports its container RUNNING. Returns how many were verified."""
        ctr_up = self.ctr_running()
        ok = 0
        for t in tasks:
            cid = ((t.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID", "")
            if alive_httpd(pid_of(t)) and cid in ctr_up:
                ok += 1
        if ok != len(tasks):
            raise RuntimeError(f"only {ok} of {len(tasks)} running tasks verified in /proc and containerd")
        return ok

    def create(self, replicas, image, restart_delay=None, kind="create"):
        """Creates a service; returns (service ID, seconds until `replicas`
        tasks run, (daemon, containerd) CPU seconds in that time)."""
        c0 = cpu_secs(self.a.pid), cpu_secs(self.a.ctr_pid)
        first = []

        def step():
            r = self.running(self.api.tasks(sid))
            if r and not first:
                first.append(time.perf_counter() - t0)
            return r if len(r) >= replicas else None

        t0 = time.perf_counter()
        sid = self.api.call("POST", "/services/create",
                            self.spec(self.name(kind), replicas, image, restart_delay))["ID"]
        _, tasks = self.poll_until(f"{replicas} running tasks", step)
        dt = time.perf_counter() - t0
        cpu = cpu_secs(self.a.pid) - c0[0], cpu_secs(self.a.ctr_pid) - c0[1]
        self.verify(tasks)
        self.first_running = first[0]
        return sid, dt, cpu

    def remove(self, sid):
        """DELETE the service; seconds until containerd holds no container of
        the daemon's namespace (all of them were this service's)."""
        t0 = time.perf_counter()
        self.api.call("DELETE", f"/services/{sid}")
        dt, _ = self.poll_until("containers removed", lambda: not self.ctr_containers())
        return dt

    def shims(self):
        """PIDs of containerd-shim-runc-v2 processes of this containerd and
        the daemon's containerd namespace."""
        out = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    argv = [x.decode(errors="replace") for x in f.read().split(b"\0")]
            except OSError:
                continue
            if not argv or not argv[0].endswith("containerd-shim-runc-v2"):
                continue
            flags = dict(zip(argv[1::2], argv[2::2]))
            if flags.get("-namespace") == self.a.ctr_namespace and flags.get("-address") == self.a.ctr_address:
                out.append(int(p))
        return out

    def memory(self):
        """PSS kB of the daemon, containerd and the shims; and the shim count."""
        shims = self.shims()
        return {"daemon": pss_kb(self.a.pid), "containerd": pss_kb(self.a.ctr_pid),
                "shims": sum(pss_kb(p) for p in shims), "shim_count": len(shims)}

    def bench_density(self, out):
        for n in self.a.density_sizes:
            runs = out["density"].setdefault(str(n), [])
            for r in range(self.a.reps):
                runs.append(self.density_run(n))
                d = runs[-1]
                log(f"density {n}: run {r + 1}: all running at {d['all_running']:.2f} s; "
                    f"overhead {d['overhead_kb_per_task']:.0f} kB/task "
                    f"({d['after']['shim_count']} shims); cpu daemon {d['cpu']['daemon']:.2f} s, "
                    f"containerd {d['cpu']['containerd']:.2f} s, shims {d['cpu']['shims']:.2f} s")

    def density_run(self, n):
        time.sleep(self.a.settle * 2)
        before = self.memory()
        ev = Events(self.a.socket)
        c0 = cpu_secs(self.a.pid), cpu_secs(self.a.ctr_pid)
        first = {}
        t0w = time.time()
        t0 = time.perf_counter()
        sid = self.api.call("POST", "/services/create",
                            self.spec(self.name("density"), n, self.a.image))["ID"]
        deadline = t0 + self.a.timeout
        while True:
            ts = self.api.tasks(sid)
            now = time.perf_counter() - t0
            for t in ts:
                seen = first.setdefault(t["ID"], {"created": (wall(t.get("CreatedAt")) or t0w) - t0w,
                                                  "slot": t.get("Slot")})
                st = state(t)
                if st in STATES:
                    for k in STATES[:STATES.index(st) + 1]:
                        seen.setdefault(k, now)
            up = self.running(ts)
            if len(up) >= n:
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"timeout ({self.a.timeout} s) waiting for {n} running tasks")
            time.sleep(self.a.density_poll)
        all_running = time.perf_counter() - t0
        cpu = {"daemon": cpu_secs(self.a.pid) - c0[0], "containerd": cpu_secs(self.a.ctr_pid) - c0[1],
               "shims": sum(cpu_secs(p) for p in self.shims())}
        self.verify(up)
        time.sleep(self.a.settle * 2)
        after = self.memory()
        ev.close()
        for tid, seen in first.items():
            for action, when in ev.seen.get(tid, {}).items():
                seen["container_" + action] = when - t0w
        timeline = {k: quantiles([s.get(k) for s in first.values()])
                    for k in ["created", "assigned", "container_create", "container_start", "running"]}
        total = lambda m: m["daemon"] + m["containerd"] + m["shims"]
        res = {"n": n, "all_running": all_running, "cpu": cpu, "before": before, "after": after,
               "overhead_kb_per_task": (total(after) - total(before)) / n,
               "timeline": timeline, "tasks": first}
        self.settle()
        try:
            res["remove"] = self.remove(sid)
        except RuntimeError as e:
            # A container left behind is a finding, not a reason to lose the
            # run: record it and go on.
            res["remove"] = None
            res["left_behind"] = self.ctr_containers()
            log(f"density {n}: {e}; left behind: {res['left_behind']}")
        return res

    def settle(self):
        time.sleep(self.a.settle)

    def bench_create(self, out):
        for n in self.a.sizes:
            key = str(n)
            out["create"][key], out["remove"][key] = [], []
            out["create_cpu"][key], out["create_first"][key] = [], []
            for r in range(self.a.reps):
                sid, dt, cpu = self.create(n, self.a.image)
                out["create"][key].append(dt)
                out["create_cpu"][key].append(cpu)
                out["create_first"][key].append(self.first_running)
                self.settle()
                out["remove"][key].append(self.remove(sid))
                log(f"create {n}: run {r + 1}: {dt:.2f} s (first running at "
                    f"{self.first_running:.2f} s; daemon cpu {cpu[0]:.2f} s, containerd cpu "
                    f"{cpu[1]:.2f} s); remove {out['remove'][key][-1]:.2f} s")
                self.settle()

    def docker(self, *args):
        """The stock CLI against this daemon; its stdout."""
        env = dict(os.environ, DOCKER_HOST=f"unix://{self.a.socket}")
        r = subprocess.run(["docker", *args], env=env, capture_output=True, text=True,
                           timeout=self.a.timeout)
        if r.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {r.returncode} {r.stderr.strip()}")
        return r.stdout

    def bench_standalone(self, out):
        """What people time on a node besides services: `docker run --rm
        IMAGE true` from the CLI's start to its exit, and `docker stats
        --no-stream` of N running containers (both daemons on `--network
        none`: dockerd runs here without its bridge)."""
        runs = []
        for r in range(self.a.standalone_reps):
            t0 = time.monotonic()
            self.docker("run", "--rm", "--network", "none", self.a.image, "true")
            runs.append(time.monotonic() - t0)
            log(f"docker run --rm: run {r + 1}: {runs[-1]:.3f} s")
        out["standalone"]["run_rm"] = runs
        n = self.a.stats_containers
        ids = [self.docker("run", "-d", "--network", "none", self.a.image,
                           "sleep", "600").strip() for _ in range(n)]
        stats = []
        try:
            for r in range(self.a.standalone_reps):
                t0 = time.monotonic()
                got = self.docker("stats", "--no-stream", "--format", "{{.ID}} {{.MemUsage}}")
                stats.append(time.monotonic() - t0)
                rows = [line for line in got.splitlines() if line.strip()]
                if len(rows) != n:
                    raise RuntimeError(f"docker stats listed {len(rows)} containers, not {n}")
                log(f"docker stats --no-stream of {n}: run {r + 1}: {stats[-1]:.3f} s")
        finally:
            self.docker("rm", "-f", *ids)
        out["standalone"]["stats"] = stats

    def bench_replace(self, out, key, delay):
        sid, _, _ = self.create(1, self.a.image, restart_delay=delay, kind="kill")
        self.settle()
        samples = out["replace"][key] = []
        phases = out["replace_phases"][key] = []
        for r in range(self.a.reps):
            old = self.running(self.api.tasks(sid))
            assert len(old) == 1, old
            old = old[0]
            pid = pid_of(old)
            if not alive_httpd(pid):
                raise RuntimeError(f"task {old['ID']}: PID {pid} is not a running httpd")
            seen = {}
            before = {t["ID"] for t in self.api.tasks(sid)}

            def step():
                ts = self.api.tasks(sid)
                now = time.perf_counter() - t0
                for t in ts:
                    if t["ID"] == old["ID"] and state(t) != "running":
                        seen.setdefault("old_not_running", now)
                    elif t["ID"] not in before and t.get("Slot") == old.get("Slot"):
                        seen.setdefault("new_task", now)
                        if state(t) == "running" and t.get("DesiredState") == "running":
                            return [t]
                return None

            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            dt, new = self.poll_until("replacement task running", step)
            self.verify(new)
            samples.append(dt)
            phases.append(seen)
            log(f"replace ({key}): run {r + 1}: {dt:.2f} s "
                f"(old task seen not running at {seen.get('old_not_running', -1):.2f} s, "
                f"new task listed at {seen.get('new_task', -1):.2f} s)")
            self.settle()
        self.remove(sid)
        self.settle()

    def bench_update(self, out):
        n = self.a.update_replicas
        sid, _, _ = self.create(n, self.a.image, kind="update")
        self.settle()
        images = [self.a.image2, self.a.image]
        for r in range(self.a.reps):
            new = images[r % 2]
            svc = self.api.call("GET", f"/services/{sid}")
            spec = svc["Spec"]
            spec["TaskTemplate"]["ContainerSpec"]["Image"] = new
            ver = svc["Version"]["Index"]
            # Only a completion of this update counts, not the last one's.
            prev_done = (svc.get("UpdateStatus") or {}).get("CompletedAt")
            marks = {}
            overlap = set()

            def step():
                s = self.api.call("GET", f"/services/{sid}")
                ts = self.api.tasks(sid)
                now = time.perf_counter() - t0
                up = self.running(ts, new)
                # Stop-first: a slot must never run its old and its new task
                # at once.
                by_slot = {}
                for t in ts:
                    if state(t) == "running":
                        by_slot.setdefault(t.get("Slot"), set()).add(image_of(t))
                overlap.update(k for k, v in by_slot.items() if len(v) > 1)
                if len(up) >= n:
                    marks.setdefault("tasks", (now, up))
                us = s.get("UpdateStatus") or {}
                if us.get("State") == "completed" and us.get("CompletedAt") != prev_done:
                    marks.setdefault("completed", now)
                return "tasks" in marks and "completed" in marks

            t0 = time.perf_counter()
            self.api.call("POST", f"/services/{sid}/update?version={ver}", spec)
            self.poll_until("update completed", step)
            t_tasks, up = marks["tasks"]
            self.verify(self.running(self.api.tasks(sid), new))
            out["update_tasks"].append(t_tasks)
            out["update_completed"].append(marks["completed"])
            out["update_overlap_slots"].append(len(overlap))
            log(f"update {n}: run {r + 1}: {t_tasks:.2f} s until {n} new tasks run, "
                f"{marks['completed']:.2f} s until completed; slots seen running old and new "
                f"task at once: {len(overlap)}")
            self.settle()
        self.remove(sid)
        self.settle()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--pid", type=int, required=True, help="the daemon's PID (CPU time)")
    ap.add_argument("--ctr-address", required=True, help="containerd socket")
    ap.add_argument("--ctr-namespace", required=True, help="shoal or moby")
    ap.add_argument("--ctr-pid", type=int, default=0, help="containerd's PID (CPU time)")
    ap.add_argument("--image", default="shoal-test/busybox:latest")
    ap.add_argument("--image2", default="shoal-test/busybox:v2")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sizes", default="1,10,50")
    ap.add_argument("--update-replicas", type=int, default=10)
    ap.add_argument("--poll", type=float, default=0.025, help="seconds between GET /tasks")
    ap.add_argument("--settle", type=float, default=1.0, help="pause between measurements")
    ap.add_argument("--timeout", type=float, default=300, help="bound of every wait, seconds")
    ap.add_argument("--density-sizes", default="200")
    ap.add_argument("--density-poll", type=float, default=0.1,
                    help="seconds between GET /tasks in the density runs")
    ap.add_argument("--only", default="create,replace,update")
    ap.add_argument("--tag", default="x")
    ap.add_argument("--standalone-reps", type=int, default=10,
                    help="samples of `docker run --rm` and `docker stats --no-stream`")
    ap.add_argument("--stats-containers", type=int, default=20)
    a = ap.parse_args()
    a.sizes = [int(x) for x in a.sizes.split(",") if x]
    a.density_sizes = [int(x) for x in a.density_sizes.split(",") if x]
    only = set(a.only.split(","))
    b = Bench(a)
    out = {"args": vars(a), "create": {}, "create_cpu": {}, "remove": {},
           "create_first": {}, "replace": {}, "replace_phases": {}, "update_tasks": [],
           "update_completed": [], "update_overlap_slots": [], "density": {},
           "standalone": {}}
    out["loadavg_start"] = os.getloadavg()
    if b.ctr_containers():
        raise RuntimeError(f"containerd namespace {a.ctr_namespace} is not empty")
    # Warm-up: the first task of a fresh daemon.
    sid, dt, _ = b.create(1, a.image, kind="warmup")
    out["warmup"] = dt
    b.settle()
    b.remove(sid)
    b.settle()
    log(f"warm-up task: {dt:.2f} s")
    if "create" in only:
        b.bench_create(out)
    if "replace" in only:
        b.bench_replace(out, "default", None)
        b.bench_replace(out, "delay0", 0)
    if "update" in only:
        b.bench_update(out)
    if "density" in only:
        b.bench_density(out)
    if "standalone" in only:
        b.bench_standalone(out)
    med = {"create": {k: statistics.median(v) for k, v in out["create"].items()},
           "remove": {k: statistics.median(v) for k, v in out["remove"].items()},
           "replace": {k: statistics.median(v) for k, v in out["replace"].items()}}
    med["standalone"] = {k: statistics.median(v) for k, v in out["standalone"].items()}
    if out["update_tasks"]:
        med["update_tasks"] = statistics.median(out["update_tasks"])
        med["update_completed"] = statistics.median(out["update_completed"])
    out["median"] = med
    out["loadavg_end"] = os.getloadavg()
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
