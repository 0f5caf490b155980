#!/usr/bin/env python3
"""The functions of template.yaml as local execution environments: one process per function
binary, served by `cargo lambda watch --only-lambda-apis` (scripts/dev), which then provides
only the Lambda Runtime API and the Invoke endpoint and starts no function itself.

  run   builds every function binary of env.json (`cargo build --bin ...`), starts each with
        AWS_LAMBDA_RUNTIME_API pointing at cargo-lambda's Runtime API for it (through the proxy
        below), and keeps it running: a process that exits for any reason (a crash, `kill -9`)
        is started again, as Lambda starts a new execution environment for the next
        invocation. Unless --ignore-changes, it also rebuilds when a source changes and
        restarts the functions whose binary changed; the old processes serve until the build
        is done, and a build that fails leaves them running.

Each process gets the environment of its own function only (env.json: the stack's endpoints,
region and credentials, plus the function's Environment.Variables, Globals included; not the
other functions' variables), as on AWS, and AWS_LAMBDA_FUNCTION_NAME / _VERSION /
_MEMORY_SIZE as the runtime reads them. The pid of each running function is in
<state>/functions/<binary>.pid; GET on the URL in <state>/functions/status-url answers, per
binary, its pid, how many processes were started and the invocation it is handling (what
scripts/tests/test_kill.py kills by).

The processes reach the Runtime API through a small proxy of this script, which knows the
invocation each process has taken: when a process dies, that invocation fails at once with
Lambda's error (Runtime.ExitError, "Runtime exited with error: signal: killed"), so its
caller (scripts/local_events.py: nothing deleted, the messages back after the queue's
visibility timeout; scripts/gateway.py: a 500) does not wait for the function's Timeout, and
the next invocation goes to the new process. One process per function: invocations of one
function run one at a time.
"""
import argparse
import ctypes
import datetime as dt
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a function binary is built from (.cargolambdaignore says the same for cargo lambda watch).
SOURCE_SUFFIXES = (".rs",)
SOURCE_NAMES = ("Cargo.toml", "Cargo.lock")
SKIP_DIRS = {"target", "node_modules", "__pycache__"}
POLL = 1.0  # seconds between scans of the sources
RESTART_MIN, RESTART_MAX = 0.2, 10.0  # back-off of a function that keeps exiting at once
STOP = threading.Event()
# How Lambda words a runtime's death in Runtime.ExitError ("Runtime exited with error: signal: killed").
SIGNAL_WORDS = {signal.SIGKILL: "killed", signal.SIGTERM: "terminated", signal.SIGABRT: "aborted",
                signal.SIGSEGV: "segmentation fault"}
# (when, Function): processes to start. Only the main thread starts processes: the death signal
# of a child (PR_SET_PDEATHSIG) follows the thread that forked it, not the process.
STARTS = queue.Queue()


def log(*parts):
    print(f"{dt.datetime.now(dt.timezone.utc):%H:%M:%S} functions:", *parts, file=sys.stderr, flush=True)


def die_with_parent():
    """Run in the child before exec: it gets SIGTERM if this supervisor dies (even by SIGKILL),
    so no function outlives scripts/dev."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class RuntimeProxy(ThreadingHTTPServer):
    """The Runtime API as each function process sees it: every request is passed to cargo
    lambda's (<runtime-api>/.rt/<binary>/...) and answered with its answer, and the proxy keeps
    track of the invocation each function is handling. When a process dies, the invocation it
    had taken is failed at once with Lambda's Runtime.ExitError, as Lambda fails it, instead of
    leaving its caller waiting for the function's Timeout."""

    daemon_threads = True

    def __init__(self, runtime_api):
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        u = urllib.parse.urlsplit(runtime_api)
        self.upstream = (u.hostname, u.port or 80)
        self.lock = threading.Lock()
        self.inflight = {}  # binary -> the request id its process took and has not answered
        self.waiting = {}  # binary -> the upstream connection of its pending `next`
        self.functions = {}  # binary -> Function (for GET /_status)

    def status(self):
        """binary -> {pid (null while none runs), starts, invocation (the request id in flight)}."""
        out = {}
        for binary, fn in self.functions.items():
            proc = fn.proc
            with self.lock:
                inflight = self.inflight.get(binary)
            out[binary] = {"pid": proc.pid if proc is not None and proc.poll() is None else None,
                           "starts": fn.starts, "invocation": inflight}
        return out

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def forward(self, method, path, body, headers):
        conn = http.client.HTTPConnection(*self.upstream, timeout=None)
        conn.request(method, path, body=body, headers=headers)
        return conn

    def took(self, binary, request_id):
        with self.lock:
            self.inflight[binary] = request_id

    def answered(self, binary, request_id):
        with self.lock:
            if self.inflight.get(binary) == request_id:
                del self.inflight[binary]

    def process_exited(self, binary, how):
        """The function's process is gone: its pending `next` must take no invocation (closed
        upstream, cargo-lambda keeps the invocation for the next process), and the invocation
        it had taken fails."""
        with self.lock:
            conn = self.waiting.pop(binary, None)
            request_id = self.inflight.pop(binary, None)
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if request_id:
            self.fail(binary, request_id, how)

    def fail(self, binary, request_id, how):
        body = json.dumps({"errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {how}",
                           "errorType": "Runtime.ExitError"}).encode()
        try:
            conn = self.forward("POST", f"/.rt/{binary}/2018-06-01/runtime/invocation/{request_id}/error", body,
                                {"content-type": "application/json",
                                 "lambda-runtime-function-error-type": "Runtime.ExitError"})
            conn.getresponse().read()
            conn.close()
            log(f"{binary}: invocation {request_id} failed: Runtime.ExitError ({how})")
        except (OSError, http.client.HTTPException) as e:
            log(f"{binary}: could not fail invocation {request_id}: {e}")


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the runtime client expects

    def log_message(self, *args):
        pass

    def body(self):
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else None

    def handle_any(self):
        srv = self.server
        if self.path == "/_status":
            data = json.dumps(srv.status()).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        binary, _, rest = self.path.lstrip("/").partition("/")
        body = self.body()
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "connection", "content-length", "transfer-encoding", "keep-alive")}
        is_next = self.command == "GET" and rest.endswith("runtime/invocation/next")
        conn = None  # unset when cargo lambda cannot be reached at all
        try:
            conn = srv.forward(self.command, f"/.rt/{binary}/{rest}", body, headers)
            if is_next:
                with srv.lock:
                    srv.waiting[binary] = conn
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
        except (OSError, http.client.HTTPException):
            # The process died while waiting (process_exited closed the connection) or cargo
            # lambda is gone: nothing to answer.
            self.close_connection = True
            return
        finally:
            if is_next:
                with srv.lock:
                    if conn is not None and srv.waiting.get(binary) is conn:
                        del srv.waiting[binary]
        request_id = resp.getheader("lambda-runtime-aws-request-id") if is_next and resp.status == 200 else None
        if request_id:
            srv.took(binary, request_id)
        elif self.command == "POST" and (rest.endswith("/response") or rest.endswith("/error")):
            srv.answered(binary, rest.split("/")[-2])
        try:
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("connection", "content-length", "transfer-encoding", "keep-alive", "date", "server"):
                    self.send_header(k, v)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            if request_id:  # taken by a process that is gone: fail it now
                with srv.lock:
                    mine = srv.inflight.get(binary) == request_id
                    if mine:
                        del srv.inflight[binary]
                if mine:
                    srv.fail(binary, request_id, "the process was gone before it got the invocation")

    do_GET = do_POST = do_PUT = handle_any


def function_envs(env, runtime_api):
    """binary -> the environment its process starts with."""
    own_keys = {k for fn in env["functions"].values() for k in fn["env"]}
    base = {k: v for k, v in os.environ.items() if k not in own_keys}
    base.update({k: v for k, v in env["env"].items() if k not in own_keys})
    out = {}
    for fn in env["functions"].values():
        binary = fn["binary"]
        e = dict(base, **fn["env"])
        e.update(AWS_LAMBDA_FUNCTION_NAME=binary, AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(fn.get("MemorySize") or 128),
                 AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{binary}", AWS_LAMBDA_LOG_STREAM_NAME="local",
                 AWS_LAMBDA_RUNTIME_API=f"{runtime_api}/{binary}")
        out[binary] = e
    return out


def source_snapshot(root):
    """(path, mtime, size) of every source a binary is built from."""
    snap = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if not x.startswith(".") and x not in SKIP_DIRS]
        rules = os.path.relpath(d, root) == os.path.join("shared", "rules")
        for f in files:
            if f.endswith(SOURCE_SUFFIXES) or f in SOURCE_NAMES or (rules and f.endswith(".json")):
                p = os.path.join(d, f)
                try:
                    st = os.stat(p)
                except OSError:
                    continue
                snap[p] = (st.st_mtime_ns, st.st_size)
    return snap


def file_stamp(path):
    try:
        st = os.stat(path)
        return st.st_mtime_ns, st.st_size, st.st_ino
    except OSError:
        return None


class Function:
    """One function's process, started again whenever it exits."""

    def __init__(self, binary, path, env, pid_dir, proxy):
        self.binary, self.path, self.env, self.proxy = binary, path, env, proxy
        self.pid_file = os.path.join(pid_dir, f"{binary}.pid")
        self.proc, self.lock = None, threading.Lock()
        self.replacing = False  # a restart we asked for (a new build), not a crash
        self.delay = RESTART_MIN
        self.starts = 0

    def start(self):
        with self.lock:
            if STOP.is_set():
                return
            self.proc = subprocess.Popen([self.path], cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
                                         preexec_fn=die_with_parent)
            self.started_at = time.monotonic()
            self.starts += 1
            with open(self.pid_file + ".tmp", "w") as f:
                f.write(f"{self.proc.pid}\n")
            os.replace(self.pid_file + ".tmp", self.pid_file)
            proc = self.proc
        threading.Thread(target=self.watch, args=(proc,), name=f"{self.binary}-watch", daemon=True).start()

    def watch(self, proc):
        rc = proc.wait()
        with self.lock:
            if STOP.is_set() or proc is not self.proc:
                return
            replacing, self.replacing = self.replacing, False
        how = f"signal: {SIGNAL_WORDS.get(-rc, f'signal {-rc}')}" if rc < 0 else f"exit status {rc}"
        self.proxy.process_exited(self.binary, how)
        if replacing:
            self.delay = RESTART_MIN
            log(f"{self.binary}: restarting on the new build")
            STARTS.put((time.monotonic(), self))
            return
        # A process that dies at once (an init error) is started again with a growing pause.
        ran = time.monotonic() - self.started_at
        self.delay = RESTART_MIN if ran > 5 else min(self.delay * 2, RESTART_MAX)
        log(f"{self.binary} (pid {proc.pid}) ended ({how}) after {ran:.1f}s; a new process serves its next "
            f"invocation (in {self.delay:.1f}s)")
        STARTS.put((time.monotonic() + self.delay, self))

    def replace(self):
        """Stop the process so that watch() starts the new build."""
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                return False
            self.replacing = True
            self.proc.terminate()
        return True

    def stop(self):
        with self.lock:
            proc = self.proc
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        try:
            os.remove(self.pid_file)
        except OSError:
            pass


def build(binaries, cargo_args):
    cmd = ["cargo", "build", *cargo_args] + [a for b in binaries for a in ("--bin", b)]
    log("building:", " ".join(cmd))
    t = time.monotonic()
    rc = subprocess.call(cmd, cwd=REPO, stdin=subprocess.DEVNULL)
    log(f"build {'done' if rc == 0 else f'failed (exit {rc})'} in {time.monotonic() - t:.0f}s")
    return rc == 0


def binary_dir(cargo_args):
    meta = json.loads(subprocess.check_output(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=REPO))
    profile = "debug"
    for i, a in enumerate(cargo_args):
        if a in ("--release", "-r"):
            profile = "release"
        elif a == "--profile" and i + 1 < len(cargo_args):
            profile = {"dev": "debug", "test": "debug", "bench": "release"}.get(cargo_args[i + 1], cargo_args[i + 1])
        elif a.startswith("--profile="):
            profile = a.split("=", 1)[1]
    return os.path.join(meta["target_directory"], profile)


def cmd_run(a):
    with open(a.env_json) as f:
        env = json.load(f)
    proxy = RuntimeProxy(a.runtime_api)
    threading.Thread(target=proxy.serve_forever, name="runtime-api", daemon=True).start()
    envs = function_envs(env, proxy.url)
    binaries = sorted(envs)
    pid_dir = os.path.join(os.path.dirname(os.path.abspath(a.env_json)), "functions")
    os.makedirs(pid_dir, exist_ok=True)
    cargo_args = []
    if a.release:
        cargo_args.append("--release")
    if a.profile:
        cargo_args += ["--profile", a.profile]
    out_dir = binary_dir(cargo_args)
    fns = {b: Function(b, os.path.join(out_dir, b), envs[b], pid_dir, proxy) for b in binaries}
    proxy.functions = fns
    with open(os.path.join(pid_dir, "status-url"), "w") as f:
        f.write(f"{proxy.url}/_status\n")
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    signal.signal(signal.SIGINT, lambda *_: STOP.set())

    snap = source_snapshot(REPO)
    ok = build(binaries, cargo_args)
    if not ok and a.ignore_changes:
        sys.exit("functions: the build failed (and --ignore-changes: nothing to wait for)")
    stamps = {b: file_stamp(fn.path) for b, fn in fns.items()}
    if ok:
        for fn in fns.values():
            fn.start()
        log(f"{len(fns)} functions running against {a.runtime_api} (through {proxy.url}): " + ", ".join(binaries)
            + ("" if a.ignore_changes else "; rebuilt on a source change"))
    else:
        log("the build failed: fix it and save; nothing runs until a build succeeds")
    pending = []  # (when, Function) to start
    next_scan = time.monotonic() + POLL
    while not STOP.is_set():
        try:
            pending.append(STARTS.get(timeout=max(0.05, min([next_scan] + [w for w, _ in pending]) - time.monotonic())))
        except queue.Empty:
            pass
        now_t = time.monotonic()
        for item in [p for p in pending if p[0] <= now_t]:
            pending.remove(item)
            item[1].start()
        if now_t < next_scan:
            continue
        next_scan = now_t + POLL
        if a.ignore_changes or STOP.is_set():
            continue
        now = source_snapshot(REPO)
        if now == snap:
            continue
        STOP.wait(0.5)  # an editor saving several files, a git checkout
        now = source_snapshot(REPO)
        changed = sorted(set(now.items()) ^ set(snap.items()))
        snap = now
        log(f"sources changed ({os.path.relpath(changed[0][0], REPO)}"
            + (f" and {len({p for p, _ in changed}) - 1} more" if len({p for p, _ in changed}) > 1 else "") + "): rebuilding")
        if not build(binaries, cargo_args):
            log("the functions keep running their last build")
            continue
        for b, fn in fns.items():
            stamp = file_stamp(fn.path)
            if fn.proc is None:
                fn.start()
            elif stamp != stamps[b]:
                fn.replace()
            stamps[b] = stamp
    for fn in fns.values():
        fn.stop()
    try:
        os.remove(os.path.join(pid_dir, "status-url"))
    except OSError:
        pass
    log("stopped")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="build, run and restart every function of env.json")
    r.add_argument("--env-json", required=True, help=".local/<profile>/env.json")
    r.add_argument("--runtime-api", required=True, help="cargo lambda watch's address, e.g. http://127.0.0.1:9001")
    r.add_argument("--ignore-changes", "--no-reload", action="store_true", help="never rebuild on a source change")
    r.add_argument("--release", "-r", action="store_true", help="build and run release binaries")
    r.add_argument("--profile", help="cargo build profile")
    a = ap.parse_args(argv)
    cmd_run(a)


if __name__ == "__main__":
    main()
