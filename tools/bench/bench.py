#!/usr/bin/env python3
"""The benchmark in one command (issue 6): builds a release tree, starts tools/mock-upstream as an
instant APNs + FCM sink (TLS, token auth) and the bouncer on loopback with a temporary database,
registers servers and devices with tools/loadgen (aloha-loadgen), drives push/notify for each
scenario, samples CPU and RSS of bouncer, sink and load tool from /proc, reads the pushes counted at
the sink from /mock/stats, and prints one table (also written as Markdown with --out).

Python standard library only. Targets are reported, never asserted: the exit status is 0 whenever
the run completed (1 when a process failed to start, 2 on bad arguments).

  tools/bench/bench.py                       # defaults: ~5-6 minutes incl. loading 1M tokens
  tools/bench/bench.py --tokens 1k --duration 5 --idle 5      # a quick look (~1 minute)
  tools/bench/bench.py --out /tmp/bench.md --connections 64 --devices 5
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import secrets
import string

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TLS = os.path.join(ROOT, "tests", "data", "tls")
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_PUSHES_PER_CPU_S = 100_000  # ../shared/spec/performance.md: the bar we report against
APP_ID = "org.aloha.bench"
MAX_SERVER_REQUESTS = 250_000      # per server and minute we stay well under requests_per_minute


# ---- small helpers ---------------------------------------------------------------------------

def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def parse_count(text):
    """'1k' -> 1000, '1M' -> 1000000, '2500' -> 2500."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}")
    mult = {"": 1, "k": 1000, "K": 1000, "m": 1_000_000, "M": 1_000_000}[m.group(2)]
    n = int(float(m.group(1)) * mult)
    if n < 1:
        raise argparse.ArgumentTypeError(f"count must be >= 1: {text!r}")
    return n


def fmt_int(x):
    return "—" if x is None else f"{x:,.0f}"


def human_count(n):
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def proc_cpu_s(pid):
    """utime + stime of a process (all threads), in seconds (proc(5): fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_run_delay_s(pid):
    """Seconds the process's threads spent runnable but waiting for a CPU (sum over
    /proc/PID/task/*/schedstat, field 2; needs schedstats, 0 when unreadable)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[1])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        return 0.0
    return total / 1e9


def system_busy_s():
    """Non-idle CPU seconds of the whole machine so far (proc(5): /proc/stat, first line)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK  # all but idle and iowait; guest is inside user


def proc_mem_kb(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def reset_peak_rss(pid):
    """Resets VmHWM (proc(5): clear_refs value 5, Linux >= 4.0). False if not permitted."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def listening_ports(pid):
    """TCP ports the process listens on, found through its socket inodes (no ss/netstat)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return []
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and parts[9] in inodes:  # 0A = LISTEN
                        ports.append(int(parts[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def http(method, url, body=None, auth=None, timeout=10):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method)
    if auth:
        import base64
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    if data is not None:
        req.add_header("Content-Type", "application/json" if data[:1] == b"{"
                       else "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Proc:
    """A child process we started, with its stderr in a file; stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, name, argv, tmp):
        self.name = name
        self.err_path = os.path.join(tmp, f"{name}.stderr")
        self.err = open(self.err_path, "wb")
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.err, cwd=ROOT)
        self.pid = self.p.pid

    def stderr_text(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def wait_for(self, pattern, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.stderr_text())
            if m:
                return m
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start:\n{self.stderr_text()[-3000:]}")

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.err.close()


# ---- the bench -------------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.a = args
        self.build = os.path.join(ROOT, args.build_dir) if not os.path.isabs(args.build_dir) else args.build_dir
        self.tmp = tempfile.mkdtemp(prefix="aloha-bench-")
        self.procs = []
        self.rows = []       # notify scenarios
        self.reg_rows = []   # registration runs
        self.notes = []
        self.server_seq = 0

    # -- setup --
    def build_tree(self):
        bouncer = os.path.join(self.build, "aloha-bouncer")
        if not os.path.isdir(self.build):
            log(f"meson setup {self.build} (release)")
            subprocess.run(["meson", "setup", self.build, "--buildtype=release",
                            "-Dtests=false", "-Dtools=true"], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
        if not self.a.no_build:
            log(f"ninja -C {self.build}")
            subprocess.run(["ninja", "-C", self.build, "aloha-bouncer", "tools/mock-upstream",
                            "tools/aloha-loadgen"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        try:
            with open(os.path.join(self.build, "meson-info", "intro-buildoptions.json")) as f:
                opts = {o["name"]: o["value"] for o in json.load(f)}
            if opts.get("buildtype") != "release":
                self.notes.append(f"build dir is buildtype={opts.get('buildtype')}, not release")
        except (OSError, ValueError):
            pass
        self.bin_bouncer = bouncer
        self.bin_mock = os.path.join(self.build, "tools", "mock-upstream")
        self.bin_loadgen = os.path.join(self.build, "tools", "aloha-loadgen")
        for b in (self.bin_bouncer, self.bin_mock, self.bin_loadgen):
            if not os.access(b, os.X_OK):
                raise RuntimeError(f"missing binary {b}")

    def start(self):
        mock = Proc("mock-upstream", [
            self.bin_mock, "--listen", "127.0.0.1:0",
            "--cert", os.path.join(TLS, "server.crt"), "--key", os.path.join(TLS, "server.key"),
            "--apns-public-key", os.path.join(TLS, "apns-key.pub.pem"),
            "--fcm-public-key", os.path.join(TLS, "fcm-key.pub.pem"),
            "--http1-control-port", "0", "--log-level", "warn"], self.tmp)
        self.procs.append(mock)
        self.mock = mock
        self.mock_port = int(mock.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        self.ctl_port = int(mock.wait_for(r"http1 control on 127\.0\.0\.1:(\d+)").group(1))

        with open(os.path.join(TLS, "fcm-service-account.json")) as f:
            sa = json.load(f)
        sa["token_uri"] = f"https://localhost:{self.mock_port}/token"
        sa_path = os.path.join(self.tmp, "fcm-service-account.json")
        with open(sa_path, "w") as f:
            json.dump(sa, f)
        conf = f"""[server]
listen = 127.0.0.1:0
database = {self.tmp}/bench.sqlite3
log_level = warn

[limits]
# The limiter runs on every request, but no scenario may be answered 429: at 45k notifies/s one
# server passes 1,000,000 a minute within 22 s, and cheap 429 answers would skew the figures.
requests_per_minute = 100000000
max_connections = 4096

[apns]
environment = sandbox
host = localhost
port = {self.mock_port}
ca_file = {TLS}/ca.crt
key_file = {TLS}/apns-key.p8
key_id = BENCHKEY01
team_id = BENCHTEAM1

[fcm]
credentials_file = {sa_path}
endpoint = https://localhost:{self.mock_port}
ca_file = {TLS}/ca.crt
"""
        conf_path = os.path.join(self.tmp, "aloha-bouncer.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        b = Proc("aloha-bouncer", [self.bin_bouncer, "serve", "--config", conf_path], self.tmp)
        self.procs.append(b)
        self.bouncer = b
        if self.a.pin:
            # Diagnostic only (not the figure): the bouncer alone on the last CPU, sink
            # and load tool on the others, to see what the tail is without them preempting it.
            cpus = sorted(os.sched_getaffinity(0))
            if len(cpus) >= 2:
                os.sched_setaffinity(b.pid, {cpus[-1]})
                os.sched_setaffinity(mock.pid, set(cpus[:-1]))
                self.loadgen_cpus = set(cpus[:-1])
                self.notes.append(f"--pin: bouncer on CPU {cpus[-1]}, sink and load tool on {cpus[:-1]}")
        deadline = time.time() + 15
        self.port = None
        while time.time() < deadline and self.port is None:
            if not b.alive():
                raise RuntimeError(f"bouncer exited:\n{b.stderr_text()[-3000:]}")
            ports = listening_ports(b.pid)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", b.stderr_text())
            if m:
                self.port = int(m.group(1))
            elif ports:
                self.port = ports[0]
            else:
                time.sleep(0.05)
        if self.port is None:
            raise RuntimeError(f"bouncer did not listen:\n{b.stderr_text()[-3000:]}")
        code, _ = http("GET", f"http://127.0.0.1:{self.port}/health")
        if code != 200:
            raise RuntimeError(f"bouncer /health answered {code}")
        self.startup_rss_kb = proc_mem_kb(b.pid).get("VmRSS", 0)
        log(f"mock on :{self.mock_port} (control :{self.ctl_port}), bouncer on :{self.port}, tmp {self.tmp}")

    def stop(self):
        for p in reversed(self.procs):
            p.stop()
        if self.a.keep_tmp:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- building blocks --
    def url(self, rel):
        return f"http://127.0.0.1:{self.port}/api/v1/remotes/{rel}"

    def new_server(self):
        self.server_seq += 1
        org_id = str(uuid.uuid4())
        key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(64))
        body = (f"aloha_org_id={org_id}&aloha_org_key={key}"
                f"&hostname=bench{self.server_seq}.aloha-test.org&contact_email=bench@aloha-test.org")
        code, text = http("POST", self.url("server/register"), body)
        if code != 200:
            raise RuntimeError(f"server/register answered {code}: {text}")
        return f"{org_id}:{key}"

    def mock_stats(self):
        code, text = http("GET", f"http://127.0.0.1:{self.ctl_port}/mock/stats")
        return json.loads(text) if code == 200 else {}

    def mock_script(self, obj):
        http("POST", f"http://127.0.0.1:{self.ctl_port}/mock/script", json.dumps(obj))

    def loadgen(self, argv_tail, label):
        argv = [self.bin_loadgen, "--json", "--show-errors", "3"] + argv_tail
        t0 = time.time()
        cpus = getattr(self, "loadgen_cpus", None)
        p = subprocess.run(argv, capture_output=True, text=True,
                           preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        if p.returncode not in (0, 1):
            raise RuntimeError(f"loadgen ({label}) failed: {p.stderr.strip()}")
        if p.stderr.strip():
            for line in p.stderr.strip().splitlines()[:5]:
                log(f"{label}: {line}")
        res = json.loads(p.stdout)
        if res.get("fatal"):
            raise RuntimeError(f"loadgen ({label}): {res['fatal']}")
        res["wall_s"] = time.time() - t0
        if "--trace" in argv and res.get("trace"):
            # Where tail.py / a correlation with the bouncer's clock finds the run's start.
            path = argv[argv.index("--trace") + 1]
            with open(path + ".json", "w") as f:
                json.dump({"start_mono_ns": res["trace"].get("start_mono_ns"), "label": label}, f)
        return res

    def register(self, auth, count, devices=1, first=0, dead=False, conns=None):
        """Registers `count` tokens numbered first.. ; token n belongs to user n/devices and is
        APNs or FCM by its place among the user's devices (first half APNs, rounded up)."""
        n_apns = (devices + 1) // 2
        kinds = "|".join("1" if j < n_apns else "2" for j in range(devices))
        if dead:  # the mock answers 410 Unregistered for APNs tokens starting with 410
            body = ("user_id=${n+1000000000}&token=410${hex61:n}&token_kind=1&ios_app_id=" + APP_ID)
            if self.a.identity == "zulip":
                body = self.zulip_ids("${n+1000000000}", form=True) + body[body.index("&token="):]
        else:
            # Tokens start with 'a': no scripted prefix of the mock (APNs or FCM) starts so.
            body = (f"user_id=${{n/{devices}}}&token=a${{hex63:n}}&token_kind=${{pick:n%{devices}:{kinds}}}"
                    f"&ios_app_id={APP_ID}")
            if self.a.identity == "zulip":
                body = self.zulip_ids(f"${{n/{devices}}}", form=True) + body[body.index("&token="):]
        return self.loadgen(["-c", str(conns or self.a.reg_connections), "-n", str(count), "--first-n", str(first),
                             "-a", auth, "-b", body, self.url("push/register")], "register")

    # --identity zulip: what current Zulip servers send (zerver/lib/push_notifications.py): user_id
    # and user_uuid (and realm_uuid) on push/register; on push/notify user_uuid, user_id,
    # realm_uuid, the payloads and the lists of the user's tokens the server believes registered.
    # The user's uuid is derived from its id; the realm uuid is one per run (the bouncer has no
    # realm for it without server/analytics, so it is looked up and ignored).
    REALM_UUID = "7c3f0e2a-51b4-4d6e-9a10-" + "%012x" % (os.getpid() & 0xffffffffffff)

    def zulip_ids(self, user_expr, form):
        uuid_t = "00000000-0000-4000-8000-${hex12:" + user_expr.strip("${}") + "}"
        if form:
            return f"user_id={user_expr}&user_uuid={uuid_t}&realm_uuid={self.REALM_UUID}"
        return f'"user_uuid":"{uuid_t}","user_id":{user_expr},"realm_uuid":"{self.REALM_UUID}",'

    def device_lists(self, user_expr, devices, dead=False):
        """The tokens register() gave user `user_expr` (first half APNs, rounded up)."""
        u = user_expr.strip("${}")
        if dead:
            return ',"android_devices":[],"apple_devices":["410${hex61:' + u + '-1000000000}"]'
        n_apns = (devices + 1) // 2
        toks = [f'"a${{hex63:{u}*{devices}+{j}}}"' if devices > 1 else f'"a${{hex63:{u}}}"' for j in range(devices)]
        return (',"android_devices":[' + ",".join(toks[n_apns:]) + '],"apple_devices":[' +
                ",".join(toks[:n_apns]) + "]")

    def notify_body(self, user_expr, devices=1, dead=False):
        body = self.notify_body_id(user_expr)
        if self.a.identity != "zulip":
            return body
        assert body.startswith('{"user_id":' + user_expr + ",")
        return ("{" + self.zulip_ids(user_expr, form=False) + body[len('{"user_id":' + user_expr + ","):-1] +
                self.device_lists(user_expr, devices, dead) + "}")

    def notify_body_id(self, user_expr):
        # A Zulip-shaped message notification (~1 KB, like a real one).
        apns = ('{"alert":{"title":"Alice Example","subtitle":"#general > lunch",'
                '"body":"Shall we go for lunch at noon? The new place on the corner has good reviews."},'
                '"sound":"default","badge":0,"custom":{"zulip":{"server":"chat.example.org","realm_id":2,'
                '"realm_uri":"https://chat.example.org","realm_url":"https://chat.example.org",'
                '"realm_name":"Example","user_id":' + user_expr + ',"sender_id":9,'
                '"sender_email":"alice@example.org","time":1700000000,"recipient_type":"stream",'
                '"stream":"general","stream_id":5,"topic":"lunch","message_ids":[${i}]}}}')
        gcm = ('{"event":"message","server":"chat.example.org","realm_id":"2",'
               '"realm_uri":"https://chat.example.org","realm_url":"https://chat.example.org",'
               '"realm_name":"Example","user_id":' + user_expr + ',"zulip_message_id":${i},'
               '"sender_id":9,"sender_email":"alice@example.org","sender_full_name":"Alice Example",'
               '"sender_avatar_url":"https://chat.example.org/avatar/9","time":1700000000,'
               '"recipient_type":"stream","stream":"general","stream_id":5,"topic":"lunch",'
               '"content":"Shall we go for lunch at noon? The new place on the corner has good reviews.",'
               '"content_truncated":false}')
        return ('{"user_id":' + user_expr + ',"apns_payload":' + apns + ',"gcm_payload":' + gcm +
                ',"gcm_options":{"priority":"high"}}')

    # -- one measured notify run --
    def run_notify(self, kind, name, auth, user_expr, conns, extra=(), expected_devices=1.0):
        url = self.url("push/notify")
        body = self.notify_body(user_expr, devices=int(expected_devices))
        # Warm-up (not measured): opens the upstream connections, mints JWT/OAuth tokens.
        self.loadgen(["-c", str(conns), "-d", str(self.a.warmup), "-a", auth, "-b", body, url], name + " warm-up")
        b, m = self.bouncer.pid, self.mock.pid
        s0 = self.mock_stats()
        peak_reset = reset_peak_rss(b)
        trace = []
        if self.a.trace_dir:
            os.makedirs(self.a.trace_dir, exist_ok=True)
            trace = ["--trace", os.path.join(os.path.abspath(self.a.trace_dir), f"{kind}-{conns}.csv")]
        c0b, c0m, sys0 = proc_cpu_s(b), proc_cpu_s(m), system_busy_s()
        w0b, w0m = proc_run_delay_s(b), proc_run_delay_s(m)
        res = self.loadgen(["-c", str(conns), "-p", str(self.a.pipeline), "-d", str(self.a.duration),
                            "-a", auth, "-b", body] + trace + list(extra) + [url], name)
        c1b, c1m, sys1 = proc_cpu_s(b), proc_cpu_s(m), system_busy_s()
        w1b, w1m = proc_run_delay_s(b), proc_run_delay_s(m)
        s1 = self.mock_stats()
        mem = proc_mem_kb(b)
        paths0, paths1 = s0.get("paths", {}), s1.get("paths", {})
        pushes = sum(paths1.get(k, 0) - paths0.get(k, 0) for k in ("apns", "fcm"))
        outcomes = {k: v - s0.get("outcomes", {}).get(k, 0) for k, v in s1.get("outcomes", {}).items()}
        wall = max(res["elapsed_s"], 1e-9)
        cpu_b = c1b - c0b
        row = {
            "kind": kind, "scenario": name, "connections": conns,
            "notify_per_s": res["ok_2xx"] / wall, "pushes_per_s": pushes / wall,
            "p50": res["latency_us"]["p50"] / 1000, "p90": res["latency_us"]["p90"] / 1000,
            "p99": res["latency_us"]["p99"] / 1000, "max": res["latency_us"]["max"] / 1000,
            "requests": res["requests"], "non_2xx": res["non_2xx"], "statuses": res["statuses"],
            "errors": res["errors"], "pushes": pushes, "outcomes": outcomes,
            "bouncer_cpu_s": cpu_b, "bouncer_core": cpu_b / wall,
            # Below ~0.2 s the clock-tick granularity (10 ms) makes a ratio meaningless.
            "pushes_per_cpu_s": pushes / cpu_b if cpu_b >= 0.2 else None,
            "notify_per_cpu_s": res["ok_2xx"] / cpu_b if cpu_b >= 0.2 else None,
            "cpu_us_per_notify": cpu_b * 1e6 / res["ok_2xx"] if res["ok_2xx"] and cpu_b >= 0.2 else None,
            "peak_rss_kb": mem.get("VmHWM", 0), "peak_is_scenario": peak_reset,
            "loadgen_core": res["cpu_s"] / wall, "sink_core": (c1m - c0m) / wall, "wall_s": wall,
            # CPU the rest of the machine used meanwhile (other builds, tests): it competes for cores.
            "other_cores": max(0.0, (sys1 - sys0) - cpu_b - (c1m - c0m) - res["cpu_s"]) / res["wall_s"],
            # Runnable but not running (waiting for a core), ms per wall second: on 2 cores shared
            # by three processes this, not the bouncer's code, is what stretches the latency tail.
            "bouncer_wait_ms_s": (w1b - w0b) * 1000 / wall, "sink_wait_ms_s": (w1m - w0m) * 1000 / wall,
            "loadgen_wait_ms_s": res.get("run_delay_s", 0.0) * 1000 / wall,
        }
        self.rows.append(row)
        notes = []
        if row["loadgen_core"] >= 0.9:
            notes.append("load tool saturated a core")
        if row["sink_core"] >= 0.9:
            notes.append("sink saturated a core")
        if res["requests"] and pushes == 0:
            notes.append("no push reached the sink (pushers not wired or not configured?)")
        elif res["ok_2xx"] and pushes < 0.95 * expected_devices * res["ok_2xx"]:
            notes.append(f"{pushes / res['ok_2xx']:.2f} pushes per notify (expected {expected_devices:g})")
        if res["non_2xx"]:
            notes.append(f"non-2xx: {res['statuses']}")
        if row["other_cores"] >= 0.2:
            notes.append(f"other processes used {row['other_cores']:.1f} cores meanwhile (figures pessimistic)")
        row["notes"] = notes
        log(f"{name}: {row['notify_per_s']:.0f} notify/s, {row['pushes_per_s']:.0f} pushes/s, "
            f"p50 {row['p50']:.2f} ms p99 {row['p99']:.2f} ms, bouncer {row['bouncer_core'] * 100:.0f} % core, "
            f"waiting for a CPU (ms/s) bouncer {row['bouncer_wait_ms_s']:.0f} / load tool "
            f"{row['loadgen_wait_ms_s']:.0f} / sink {row['sink_wait_ms_s']:.0f}"
            + (f" [{'; '.join(notes)}]" if notes else ""))
        return row

    def timed_register(self, label, auth_list, count, devices=1):
        """Registers count tokens spread over the given servers (chunks of count/len(auth_list)),
        measuring the bouncer's CPU; returns the per-server chunk size."""
        b = self.bouncer.pid
        c0 = proc_cpu_s(b)
        t0 = time.time()
        chunk = math.ceil(count / len(auth_list))
        lat = {"p50": 0.0, "p99": 0.0, "max": 0.0}
        non2xx = 0
        done = 0
        for k, auth in enumerate(auth_list):
            n = min(chunk, count - k * chunk)
            if n <= 0:
                break
            res = self.register(auth, n, devices=devices, first=k * chunk)
            done += res["ok_2xx"]
            non2xx += res["non_2xx"]
            for q in lat:  # the worst chunk's figures
                lat[q] = max(lat[q], res["latency_us"][q] / 1000)
        wall = time.time() - t0
        cpu = proc_cpu_s(b) - c0
        row = {"label": label, "tokens": count, "servers": len(auth_list), "wall_s": wall,
               "per_s": done / wall, "non_2xx": non2xx, "cpu_s": cpu,
               "per_cpu_s": done / cpu if cpu >= 0.2 else None, **lat,
               "rss_kb": proc_mem_kb(b).get("VmRSS", 0)}
        self.reg_rows.append(row)
        log(f"registered {label}: {row['per_s']:.0f}/s over {wall:.1f} s, {fmt_int(row['per_cpu_s'])} per CPU-second"
            + (f", {non2xx} non-2xx" if non2xx else ""))
        return chunk

    # -- scenarios --
    def run(self):
        a = self.a
        base = a.tokens[0]
        scenarios = a.scenarios
        C = a.connections

        if "1dev" in scenarios:
            auth = self.new_server()
            self.timed_register(f"{human_count(base)} tokens, 1 per user", [auth], base)
            self.run_notify("1dev", f"1 device per notify, {human_count(base)} tokens", auth, f"${{i%{base}}}", C)
        if "conns4x" in scenarios:
            auth = self.new_server()
            self.register(auth, base)
            self.run_notify("conns4x", f"1 device, {4 * C} connections", auth, f"${{i%{base}}}", 4 * C)
        if "multi" in scenarios and a.devices > 1:
            auth = self.new_server()
            users = max(1, base // a.devices)
            self.register(auth, users * a.devices, devices=a.devices)
            n_apns = (a.devices + 1) // 2
            self.run_notify("multi", f"{a.devices} devices per notify ({n_apns} APNs + {a.devices - n_apns} FCM)",
                            auth, f"${{i%{users}}}", C, expected_devices=a.devices)
        if "dead" in scenarios:
            auth = self.new_server()
            self.register(auth, base)
            # Dead tokens are deleted on their first 410, so every dead notify needs a fresh one:
            # every 10th request (alt) goes to its own dead user from a pool sized from the rate
            # seen so far.
            rate = max([r["notify_per_s"] for r in self.rows] or [20000])
            every = max(2, round(1 / a.dead_share))
            pool = int(rate * 1.5 * a.duration / every) + 1000
            self.register(auth, pool, dead=True)
            extra = ["--alt-every", str(every), "--alt-body", self.notify_body("${n+1000000000}", dead=True)]
            row = self.run_notify("dead", f"{100 / every:.0f} % dead tokens (410)", auth, f"${{i%{base}}}", C, extra)
            dead = row["outcomes"].get("Unregistered", 0)
            expected = row["requests"] // every
            if dead < 0.95 * expected:
                row["notes"].append(f"only {dead} of {expected} dead notifies reached a dead token "
                                    f"(pool of {pool} too small?)")
            else:
                row["notes"].append(f"{dead} answered 410")
        if "delay" in scenarios:
            auth = self.new_server()
            self.register(auth, base)
            self.mock_script({"delay_ms": a.sink_delay_ms})
            try:
                row = self.run_notify("delay", f"sink answers after {a.sink_delay_ms} ms", auth, f"${{i%{base}}}", C)
                row["notes"].append(f"closed loop: at most {C} / {a.sink_delay_ms} ms = "
                                    f"{C * 1000 / max(1, a.sink_delay_ms):,.0f} notifications/s")
            finally:
                self.mock_script({"delay_ms": 0})
        if "big" in scenarios:
            for count in a.tokens[1:]:
                servers = [self.new_server() for _ in range(math.ceil(count / MAX_SERVER_REQUESTS))]
                chunk = self.timed_register(f"{human_count(count)} tokens, 1 per user", servers, count)
                # Users of the first server in a scattered order (7919 is prime: a permutation of
                # 0..chunk-1 unless chunk is a multiple of it).
                row = self.run_notify("big", f"1 device per notify, {human_count(count)} tokens", servers[0],
                                      f"${{i*7919%{chunk}}}", C)
                if len(servers) > 1:
                    row["notes"].append(f"tokens spread over {len(servers)} servers (rate limit); notifies go "
                                        f"to the {human_count(chunk)} users of one, in scattered order")

        # Idle: what the bouncer costs doing nothing after the load.
        b = self.bouncer.pid
        c0 = proc_cpu_s(b)
        log(f"idle for {a.idle} s")
        time.sleep(a.idle)
        self.idle = {"seconds": a.idle, "cpu_s": proc_cpu_s(b) - c0,
                     "rss_kb": proc_mem_kb(b).get("VmRSS", 0), "hwm_kb": proc_mem_kb(b).get("VmHWM", 0)}

    # -- the targets, evaluated from this run --
    def targets_markdown(self):
        """One line per target of issue 6: the figure of this run and met / not met (reported, never
        asserted). Targets whose scenarios did not run are left out."""
        by = {}
        for r in self.rows:
            by.setdefault(r["kind"], r)
        lines = ["| target (issue 6) | this run | |", "|---|---|---|"]

        def add(target, figure, ok):
            lines.append(f"| {target} | {figure} | {'met' if ok else '**not met**'} |")

        one = by.get("1dev")
        if one and one["pushes_per_cpu_s"]:
            add(f"≥ {TARGET_PUSHES_PER_CPU_S:,} pushes per bouncer CPU-second, 1 device",
                f"{one['pushes_per_cpu_s']:,.0f} ({one['cpu_us_per_notify']:.1f} µs per notify)",
                one["pushes_per_cpu_s"] >= TARGET_PUSHES_PER_CPU_S)
        if one:
            add(f"notify p99 ≤ 2 ms at {one['connections']} connections, instant sink",
                f"p99 {one['p99']:.2f} ms (p50 {one['p50']:.2f} ms)", one["p99"] <= 2.0)
        multi = by.get("multi")
        if one and multi and one["cpu_us_per_notify"] and multi["cpu_us_per_notify"]:
            ratio = multi["cpu_us_per_notify"] / one["cpu_us_per_notify"]
            add(f"a {self.a.devices}-device notify costs ≤ 1.5× a 1-device one (bouncer CPU per notify)",
                f"{multi['cpu_us_per_notify']:.1f} vs {one['cpu_us_per_notify']:.1f} µs: {ratio:.2f}×", ratio <= 1.5)
        dead = by.get("dead")
        if one and dead and one["notify_per_s"]:
            loss = 1 - dead["notify_per_s"] / one["notify_per_s"]
            add(f"{100 * self.a.dead_share:.0f} % dead tokens cost ≤ 10 % throughput",
                f"{dead['notify_per_s']:,.0f} vs {one['notify_per_s']:,.0f} notifications/s: "
                f"{-100 * loss:+.1f} %", loss <= 0.10)
        big = by.get("big")
        if one and big and one["p50"] > 0 and one["p99"] > 0:
            r50, r99 = big["p50"] / one["p50"], big["p99"] / one["p99"]
            add(f"latency at {human_count(self.a.tokens[-1])} tokens ≤ 1.2× latency at "
                f"{human_count(self.a.tokens[0])} (p50 and p99)",
                f"p50 {big['p50']:.2f} vs {one['p50']:.2f} ms ({r50:.2f}×), p99 {big['p99']:.2f} vs "
                f"{one['p99']:.2f} ms ({r99:.2f}×)", r50 <= 1.2 and r99 <= 1.2)
        i = getattr(self, "idle", None)
        if i:
            # VmHWM is reset at the start of each scenario, so the run's peak is the largest of the
            # per-scenario peaks (and of the idle tail's).
            peaks = [(r["peak_rss_kb"], r["scenario"]) for r in self.rows] + [(i["hwm_kb"], "idle / load")]
            top_kb, top_name = max(peaks)
            label = (f"peak RSS ≤ 10 MB with {human_count(self.a.tokens[-1])} tokens under load" if big
                     else "peak RSS ≤ 10 MB (this run had no 1M-token scenario)")
            figure = (f"{top_kb / 1024:.1f} MB at most (in: {top_name})"
                      + (f"; {big['peak_rss_kb'] / 1024:.1f} MB in the {human_count(self.a.tokens[-1])}-token run"
                         if big else "")
                      + f"; start-up {self.startup_rss_kb / 1024:.1f} MB")
            add(label, figure, top_kb <= 10 * 1024)
            share = i["cpu_s"] / i["seconds"] if i["seconds"] else 0
            add("idle CPU < 0.1 %", f"{i['cpu_s']:.2f} CPU-s in {i['seconds']:g} s ({100 * share:.2f} %)",
                share < 0.001)
        size = stripped_size(self.bin_bouncer, self.tmp)
        if size is not None:
            add("stripped binary ≤ 1.5 MB", f"{size:,} bytes", size <= 1_500_000)
        return lines

    # -- report --
    def markdown(self):
        a = self.a
        out = []
        try:
            cpu_model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
        except (OSError, StopIteration):
            cpu_model = platform.processor() or "?"
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip() or "?"
        out.append(f"Run {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, commit {rev} (plus local changes), "
                   f"{os.cpu_count()} CPUs ({cpu_model}), Linux {platform.release()}; "
                   f"{a.connections} connections, pipeline {a.pipeline}, {a.duration:g} s per scenario "
                   f"after {a.warmup:g} s warm-up; loopback, mock-upstream as instant sink (TLS 1.2, h2).")
        out.append("")
        out.append("| scenario | notifications/s | pushes/s (sink) | p50 | p90 | p99 | max | bouncer CPU s "
                   "| CPU µs per notify | pushes per CPU-s | peak RSS | bouncer / load tool / sink core |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in self.rows:
            rss = f"{r['peak_rss_kb'] / 1024:.1f} MB" + ("" if r["peak_is_scenario"] else " (since start)")
            out.append(f"| {r['scenario']} ({r['connections']} conn.) | {r['notify_per_s']:,.0f} | {r['pushes_per_s']:,.0f} "
                       f"| {r['p50']:.2f} ms | {r['p90']:.2f} ms | {r['p99']:.2f} ms | {r['max']:.1f} ms "
                       f"| {r['bouncer_cpu_s']:.2f} | {fmt_int(r['cpu_us_per_notify'])} "
                       f"| {fmt_int(r['pushes_per_cpu_s'])} | {rss} "
                       f"| {r['bouncer_core'] * 100:.0f} / {r['loadgen_core'] * 100:.0f} / {r['sink_core'] * 100:.0f} % |")
        if self.reg_rows:
            out.append("")
            out.append("| registration (push/register) | registrations/s | worst p50 | worst p99 | time "
                       "| bouncer CPU s | registrations per CPU-s | RSS after |")
            out.append("|---|---|---|---|---|---|---|---|")
            for r in self.reg_rows:
                out.append(f"| {r['label']} ({r['servers']} server{'s' if r['servers'] > 1 else ''}) "
                           f"| {r['per_s']:,.0f} | {r['p50']:.2f} ms | {r['p99']:.2f} ms | {r['wall_s']:.1f} s "
                           f"| {r['cpu_s']:.2f} | {fmt_int(r['per_cpu_s'])} | {r['rss_kb'] / 1024:.1f} MB |")
        i = getattr(self, "idle", None)
        if i:
            out.append("")
            out.append(f"Idle {i['seconds']:g} s after the load: {i['cpu_s']:.2f} CPU-s, RSS {i['rss_kb'] / 1024:.1f} MB "
                       f"(peak since the last scenario began {i['hwm_kb'] / 1024:.1f} MB); RSS right after start-up "
                       f"{self.startup_rss_kb / 1024:.1f} MB.")
        out.append("")
        out.extend(self.targets_markdown())
        out.append("")
        out.append(f"Target (reported, not asserted): {TARGET_PUSHES_PER_CPU_S:,} pushes per bouncer CPU-second "
                   "(../shared/spec/performance.md).")
        for r in self.rows:
            if r["pushes_per_cpu_s"] is None:
                line = f"- {r['scenario']}: too little CPU to measure"
            else:
                line = f"- {r['scenario']}: {100 * r['pushes_per_cpu_s'] / TARGET_PUSHES_PER_CPU_S:.0f} % of target"
            if r["notes"]:
                line += "; " + "; ".join(r["notes"])
            out.append(line)
        for n in self.notes:
            out.append(f"- {n}")
        out.append("")
        out.append("Latency is push/notify as the load tool sees it (request written → answer read). "
                   "Pushes are counted at the sink (APNs + FCM requests, retries included). CPU is utime+stime "
                   "from /proc/PID/stat over the measured window; \"core\" is CPU seconds per wall second "
                   "(≥ 90 % for the load tool or sink means it, not the bouncer, may have been the limit).")
        return "\n".join(out) + "\n"


def stripped_size(binary, tmp):
    """Size in bytes of a stripped copy of `binary` (None when strip is missing)."""
    out = os.path.join(tmp, "stripped-bouncer")
    try:
        subprocess.run(["strip", "-o", out, binary], check=True, capture_output=True)
        return os.path.getsize(out)
    except (OSError, subprocess.CalledProcessError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=20, help="seconds per measured scenario (default 20)")
    ap.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before each (default 2)")
    ap.add_argument("--connections", type=int, default=64, help="client connections (default 64)")
    ap.add_argument("--pipeline", type=int, default=1, help="requests in flight per connection (default 1)")
    ap.add_argument("--reg-connections", type=int, default=64,
                    help="connections while registering tokens (default 64)")
    ap.add_argument("--devices", type=int, default=5, help="devices per notify in the multi-device scenario (default 5)")
    ap.add_argument("--tokens", default="1k,1M",
                    help="registered-token populations: the first is used by every scenario, each further one "
                         "gets a load (registration throughput) and a 1-device run (default 1k,1M)")
    ap.add_argument("--dead-share", type=float, default=0.1, help="share of notifies to dead tokens (default 0.1)")
    ap.add_argument("--sink-delay-ms", type=int, default=20, help="sink delay of the delay scenario (default 20)")
    ap.add_argument("--idle", type=float, default=30, help="idle seconds measured at the end (default 30)")
    ap.add_argument("--scenarios", default="1dev,conns4x,multi,dead,delay,big",
                    help="subset of 1dev,conns4x,multi,dead,delay,big (default all)")
    ap.add_argument("--identity", choices=("id", "zulip"), default="id",
                    help="id: user_id only (default); zulip: user_id + user_uuid + realm_uuid and the "
                         "device lists, as current Zulip servers send them")
    ap.add_argument("--out", help="also write the table as Markdown to this file")
    ap.add_argument("--build-dir", default="build-bench", help="release build directory (default build-bench)")
    ap.add_argument("--no-build", action="store_true", help="do not run ninja (use the binaries as they are)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (config, database, logs)")
    ap.add_argument("--pin", action="store_true",
                    help="diagnostic: bouncer alone on one CPU, sink and load tool on the other(s)")
    ap.add_argument("--trace-dir", help="write each measured run's per-answer latencies (loadgen --trace) to "
                                        "DIR/SCENARIO-CONNS.csv; tools/bench/tail.py summarises them")
    a = ap.parse_args()
    try:
        a.tokens = [parse_count(t) for t in a.tokens.split(",") if t.strip()]
    except argparse.ArgumentTypeError as e:
        ap.error(str(e))
    a.scenarios = {s.strip() for s in a.scenarios.split(",") if s.strip()}
    unknown = a.scenarios - {"1dev", "conns4x", "multi", "dead", "delay", "big"}
    if unknown or not a.tokens or a.connections < 1 or a.duration <= 0 or not 0 < a.dead_share < 1 \
            or a.devices < 1:
        ap.error(f"bad arguments (unknown scenarios: {sorted(unknown)})" if unknown else "bad arguments")

    bench = Bench(a)
    rc = 0
    try:
        bench.build_tree()
        bench.start()
        bench.run()
    except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
        log(f"failed: {e}")
        rc = 1
    except KeyboardInterrupt:
        log("interrupted")
        rc = 1
    finally:
        try:
            if rc == 0 or bench.rows or bench.reg_rows:
                md = bench.markdown()
                print(md)
                if a.out:
                    with open(a.out, "w") as f:
                        f.write(md)
                    log(f"wrote {a.out}")
        finally:
            bench.stop()
    return rc


if __name__ == "__main__":
    sys.exit(main())
