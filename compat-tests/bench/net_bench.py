#!/usr/bin/env python3
"""Networking benchmark of shoald's data path on one node.

Layout: a node (network + mount namespace of its own, held by a sleeping
process) runs a private containerd and shoald; a client machine (another
network namespace) is joined to it by a veth pair, node 192.0.2.1, client
192.0.2.2. Everything this script starts is ended by PID; no traffic leaves
the namespaces it made.

Figures (each the median of --reps rounds; ab from apache2-utils):
- connection rate: requests/s without keep-alive (a new connection, and a
  new DNAT decision, per request) from the client to the published port
  (routing mesh, 3 replicas) vs to one task's own address (routed through
  the node to the task's gateway-bridge address, no load balancer);
- throughput: transfer rate of a 2 MB file the same two ways;
- DNS: from a new task's container start (State.StartedAt) until
  `tasks.NAME` answers with it inside another task's namespace (polled every
  5 ms on 127.0.0.11);
- VIP removal: after `docker service scale back=2` (3 before), how long a
  client task still got an answer from the removed task (it serves until no
  VIP lists it, then stops) or a failed connection through the VIP (polled
  continuously), and how many connections failed in all rounds.

dockerd cannot be measured beside it on this kernel (no IPVS: its routing
mesh does not start), so the data-path figures are ratios against direct
connections, as the issue asks.

Usage (root): python3 compat-tests/bench/net_bench.py [--shoald BIN] [--reps N]
Prints a JSON document and a Markdown table.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
IMAGE = "shoal-test/busybox:latest"
NODE_ADDR = "192.0.2.1"
CLIENT_ADDR = "192.0.2.2"


class Ns:
    """Namespaces held by a sleeping process started here."""

    def __init__(self):
        self.proc = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "slave", "sleep", "7200"]
        )
        for _ in range(100):
            try:
                if open(f"/proc/{self.proc.pid}/comm").read().strip() == "sleep":
                    break
            except OSError:
                pass
            time.sleep(0.05)
        self.check(["ip", "link", "set", "lo", "up"])

    def cmd(self, args):
        return ["nsenter", "-t", str(self.proc.pid), "--net", "--mount", "--"] + list(args)

    def run(self, args, timeout=120):
        return subprocess.run(self.cmd(args), capture_output=True, text=True, timeout=timeout)

    def check(self, args, timeout=120):
        r = self.run(args, timeout)
        if r.returncode != 0:
            sys.exit(f"net_bench: {args} failed: {r.stderr}")
        return r.stdout

    def stop(self):
        stop_pid(self.proc)


def stop_pid(proc, grace=10):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Bench:
    def __init__(self, shoald, tmp):
        self.tmp = tmp
        self.node = Ns()
        self.client = Ns()
        self.node.check(["ip", "link", "add", "shoal-cl0", "type", "veth", "peer", "name",
                         "eth0", "netns", str(self.client.proc.pid)])
        self.node.check(["ip", "addr", "add", f"{NODE_ADDR}/24", "dev", "shoal-cl0"])
        self.node.check(["ip", "link", "set", "shoal-cl0", "up"])
        self.client.check(["ip", "addr", "add", f"{CLIENT_ADDR}/24", "dev", "eth0"])
        self.client.check(["ip", "link", "set", "eth0", "up"])
        self.csock = os.path.join(tmp, "c.sock")
        with open(os.path.join(tmp, "config.toml"), "w") as f:
            f.write('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{tmp}/opt"\n')
        self.containerd = subprocess.Popen(
            self.node.cmd(["containerd", "--config", f"{tmp}/config.toml", "--address",
                           self.csock, "--root", f"{tmp}/root", "--state", f"{tmp}/state"]),
            stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/containerd.log", "w"))
        self.wait(lambda: subprocess.run(["ctr", "--address", self.csock, "version"],
                                         capture_output=True).returncode == 0, "containerd")
        self.sock = os.path.join(tmp, "docker.sock")
        self.shoald = subprocess.Popen(
            self.node.cmd([shoald, "--host", f"unix://{self.sock}", "--data-root",
                           f"{tmp}/data", "--containerd", self.csock]),
            stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/shoald.log", "w"))
        self.wait(lambda: os.path.exists(self.sock) and self.docker_ok(["version"]), "shoald")

    def close(self):
        stop_pid(self.shoald, 20)
        ids = subprocess.run(["ctr", "--address", self.csock, "-n", "shoal", "tasks", "ls", "-q"],
                             capture_output=True, text=True).stdout.split()
        for i in ids:
            subprocess.run(["ctr", "--address", self.csock, "-n", "shoal", "tasks", "kill",
                            "-a", "-s", "SIGKILL", i], capture_output=True)
        time.sleep(1)
        for i in ids:
            subprocess.run(["ctr", "--address", self.csock, "-n", "shoal", "tasks", "rm", "-f", i],
                           capture_output=True)
        stop_pid(self.containerd)
        self.client.stop()
        self.node.stop()

    @staticmethod
    def wait(f, what, secs=60):
        deadline = time.time() + secs
        while time.time() < deadline:
            try:
                if f():
                    return
            except Exception:
                pass
            time.sleep(0.1)
        sys.exit(f"net_bench: timed out waiting for {what}")

    def docker(self, args, timeout=120):
        env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}")
        return subprocess.run(["docker"] + args, capture_output=True, text=True, env=env,
                              timeout=timeout)

    def docker_ok(self, args):
        return self.docker(args).returncode == 0

    def d(self, args):
        r = self.docker(args)
        if r.returncode != 0:
            sys.exit(f"net_bench: docker {args} failed: {r.stderr}")
        return r.stdout

    def containers(self, svc, n):
        out = []

        def ready():
            nonlocal out
            out = self.d(["container", "ls", "-q", "--no-trunc", "--filter",
                          f"label=com.docker.swarm.service.name={svc}"]).split()
            return len(out) == n
        self.wait(ready, f"{n} containers of {svc}")
        return out

    def sandbox(self, cid):
        return self.d(["container", "inspect", "--format", "{{.NetworkSettings.SandboxKey}}",
                       cid]).strip()

    def in_task(self, cid, args):
        """A command line running `args` in task `cid`'s network namespace."""
        return self.node.cmd(["nsenter", f"--net={self.sandbox(cid)}", "--"] + list(args))


def ab(ns, url, n, c):
    r = ns.run(["ab", "-q", "-n", str(n), "-c", str(c), "-s", "10", url], timeout=300)
    rps = re.search(r"Requests per second:\s+([\d.]+)", r.stdout)
    rate = re.search(r"Transfer rate:\s+([\d.]+)", r.stdout)
    failed = re.search(r"Failed requests:\s+(\d+)", r.stdout)
    if not rps or (failed and int(failed.group(1)) > 0):
        sys.exit(f"net_bench: ab {url} failed: {r.stdout[-800:]} {r.stderr[-400:]}")
    return float(rps.group(1)), float(rate.group(1))


DNS_POLL = r"""
import socket, struct, sys, time
name = sys.argv[1]
q = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.05)
deadline = time.time() + 60
while time.time() < deadline:
    s.sendto(q, ("127.0.0.11", 53))
    try:
        r = s.recv(2048)
        if struct.unpack(">H", r[6:8])[0] > 0:
            print(repr(time.time()))
            sys.exit(0)
    except socket.timeout:
        pass
    time.sleep(0.005)
sys.exit(1)
"""

VIP_POLL = r"""
import socket, sys, time
# The VIP's address comes from the caller (this runs in the task's network
# namespace but the node's files, so the node's resolv.conf): this measures
# the VIP, not name lookups.
vip, secs = sys.argv[1], float(sys.argv[2])
end = time.time() + secs
while time.time() < end:
    t = time.time()
    try:
        c = socket.create_connection((vip, 80), timeout=0.5)
        c.sendall(b"GET /etc/hostname HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            b = c.recv(4096)
            if not b:
                break
            data += b
        c.close()
        host = data.split(b"\r\n\r\n", 1)[-1].decode().strip()
    except OSError as e:
        host = "!error " + type(e).__name__
    print(f"{t!r} {host}", flush=True)
    time.sleep(0.01)
"""


def started_at(b, cid):
    text = b.d(["container", "inspect", "--format", "{{.State.StartedAt}}", cid]).strip()
    # RFC 3339 with nanoseconds, UTC.
    m = re.match(r"(\d+-\d+-\d+T\d+:\d+:\d+)(?:\.(\d+))?Z", text)
    base = time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return base + float("0." + (m.group(2) or "0"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shoald", default=os.path.join(REPO, "target", "release", "shoald"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("net_bench: run as root")
    tmp = tempfile.mkdtemp(prefix="shoal-netbench.")
    b = Bench(os.path.abspath(args.shoald), tmp)
    try:
        image = os.path.join(tmp, "image.tar")
        subprocess.run(["bash", os.path.join(REPO, "compat-tests/scripts/make-test-image.sh"),
                        image], check=True, capture_output=True)
        b.d(["load", "-q", "-i", image])
        b.d(["swarm", "init", "--advertise-addr", "127.0.0.1"])
        b.d(["network", "create", "-d", "overlay", "benchnet"])
        httpd = [IMAGE, "httpd", "-f", "-p", "80", "-h", "/"]
        b.d(["service", "create", "-d", "-q", "--name", "web", "--network", "benchnet",
             "--replicas", "3", "-p", "8080:80"] + httpd)
        b.d(["service", "create", "-d", "-q", "--name", "back", "--network", "benchnet",
             "--replicas", "3"] + httpd)
        web = b.containers("web", 3)
        b.containers("back", 3)
        # One task's gateway-bridge address, reachable from the client
        # through the node.
        addrs = b.node.run(["nsenter", f"--net={b.sandbox(web[0])}", "ip", "-o", "-4", "addr"])
        direct = None
        for line in addrs.stdout.splitlines():
            m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/(\d+)", line)
            if m and not m.group(1).startswith(("127.", "10.")):
                direct = m.group(1)
                prefix = m.group(2)
        if direct is None:
            sys.exit(f"net_bench: no gateway-bridge address in {addrs.stdout}")
        net = subprocess.run(["python3", "-c",
                              f"import ipaddress;print(ipaddress.ip_network('{direct}/{prefix}', strict=False))"],
                             capture_output=True, text=True).stdout.strip()
        b.client.check(["ip", "route", "add", net, "via", NODE_ADDR])
        mesh_url = f"http://{NODE_ADDR}:8080"
        direct_url = f"http://{direct}:80"
        b.wait(lambda: b.client.run(["curl", "-sf", "--max-time", "2",
                                     f"{mesh_url}/etc/hostname"]).returncode == 0, "the mesh")

        rate = {"mesh": [], "direct": []}
        tput = {"mesh": [], "direct": []}
        for _ in range(args.reps):
            for kind, url in (("direct", direct_url), ("mesh", mesh_url)):
                rate[kind].append(ab(b.client, f"{url}/etc/hostname", args.requests, 16)[0])
                tput[kind].append(ab(b.client, f"{url}/bin/busybox", 200, 4)[1])

        # DNS: task start -> tasks.NAME answering in another task.
        dns = []
        for i in range(args.reps):
            name = f"probe{i}"
            poll = subprocess.Popen(b.in_task(web[0], ["python3", "-c", DNS_POLL,
                                                       f"tasks.{name}"]),
                                    stdout=subprocess.PIPE, text=True)
            b.d(["service", "create", "-d", "-q", "--name", name, "--network", "benchnet",
                 IMAGE, "sleep", "3600"])
            out, _ = poll.communicate(timeout=90)
            cid = b.containers(name, 1)[0]
            dns.append((float(out.strip()) - started_at(b, cid)) * 1000)
            b.d(["service", "rm", name])

        # VIP removal: 3 -> 2 replicas of `back`, polled from a web task.
        removal = []
        failed = 0
        vip = b.d(["service", "inspect", "--format",
                   "{{range .Endpoint.VirtualIPs}}{{.Addr}} {{end}}", "back"]).split()[0]
        vip = vip.split("/")[0]
        for _ in range(args.reps):
            before = set(c[:12] for c in b.containers("back", 3))
            poll = subprocess.Popen(b.in_task(web[0], ["python3", "-c", VIP_POLL, vip, "8"]),
                                    stdout=subprocess.PIPE, text=True)
            time.sleep(1)
            t0 = time.time()
            b.d(["service", "scale", "-d", "back=2"])
            out, _ = poll.communicate(timeout=60)
            answered = [l for l in out.splitlines() if not l.split(" ", 1)[1].startswith("!")]
            if poll.returncode != 0 or not answered:
                sys.exit(f"net_bench: the VIP poll got no answer (exit {poll.returncode})")
            after = set(c[:12] for c in b.containers("back", 2))
            gone = before - after
            last = t0
            late = []
            for line in out.splitlines():
                t, host = line.split(" ", 1)
                if float(t) >= t0 and (host in gone or host.startswith("!error")):
                    last = max(last, float(t))
                    late.append((round((float(t) - t0) * 1000), host))
            print(f"net_bench: after scale-down: {late[:3]} ... {late[-3:]} ({len(late)})",
                  file=sys.stderr)
            removal.append((last - t0) * 1000)
            failed += sum(1 for _, host in late if host.startswith("!error"))
            b.d(["service", "scale", "-d", "back=3"])
            b.containers("back", 3)
            time.sleep(1)

        med = statistics.median
        res = {
            "reps": args.reps,
            "conn_rate_rps": {k: med(v) for k, v in rate.items()},
            "throughput_kBps": {k: med(v) for k, v in tput.items()},
            "dns_ms": {"median": med(dns), "max": max(dns), "samples": dns},
            "vip_removal_ms": {"median": med(removal), "max": max(removal), "samples": removal},
            "failed_during_scale_down": failed,
            "samples": {"rate": rate, "tput": tput},
        }
        print(json.dumps(res, indent=2))
        print()
        print("| figure | published port (mesh) | direct to a task | mesh/direct |")
        print("| --- | --- | --- | --- |")
        for label, key, unit in (("connections/s (no keep-alive, 16 at once)", "conn_rate_rps", ""),
                                 ("throughput, 2 MB GETs (4 at once)", "throughput_kBps", " kB/s")):
            m, d = res[key]["mesh"], res[key]["direct"]
            print(f"| {label} | {m:.0f}{unit} | {d:.0f}{unit} | {m / d:.2f} |")
        print(f"| task start -> tasks.NAME resolves | {res['dns_ms']['median']:.0f} ms "
              f"(max {res['dns_ms']['max']:.0f}) | | |")
        print(f"| scale 3->2: VIP stops using the removed task | "
              f"{res['vip_removal_ms']['median']:.0f} ms (max {res['vip_removal_ms']['max']:.0f}) | | |")
        print(f"| failed connections through the VIP while scaling down ({args.reps} rounds) | "
              f"{res['failed_during_scale_down']} | | |")
    finally:
        b.close()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
