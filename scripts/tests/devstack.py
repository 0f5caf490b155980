"""`scripts/dev` for the end-to-end tests (test_e2e.py, test_kill.py): on the e2e stack
profile (state in .local/e2e/) on free ports (or LOYALTY_E2E_DDB_PORT / LOYALTY_E2E_SQS_PORT /
LOYALTY_E2E_HTTP_PORT / LOYALTY_E2E_INVOKE_PORT), as a user would run it; stopped afterwards,
also when a test fails. The first call waits up to LOYALTY_E2E_BUILD_TIMEOUT seconds (default
900) for the functions' build. LOYALTY_SKIP_E2E=1 skips the tests that use it."""
import contextlib
import os
import signal
import socket
import subprocess
import time

import pytest

import demo

REPO = demo.REPO
BUILD_TIMEOUT = float(os.environ.get("LOYALTY_E2E_BUILD_TIMEOUT", "900"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def tail(path, n=60):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def running(tmp_path_factory, extra_env=None):
    """scripts/dev --ignore-changes on the e2e profile: yields {api, port, env, log, state}."""
    if os.environ.get("LOYALTY_SKIP_E2E") == "1":
        pytest.skip("LOYALTY_SKIP_E2E=1")
    port = int(os.environ.get("LOYALTY_E2E_HTTP_PORT") or free_port())
    # Not the environment of the test stack that scripts/test sourced: scripts/dev makes its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOYALTY_"))}
    if "LOYALTY_TOOLS_DIR" in os.environ:
        env["LOYALTY_TOOLS_DIR"] = os.environ["LOYALTY_TOOLS_DIR"]
    # Free ports unless given: two checkouts may run their tests at once on one machine.
    env.update(LOYALTY_STACK="e2e", LOYALTY_HTTP_PORT=str(port),
               LOYALTY_DDB_PORT=os.environ.get("LOYALTY_E2E_DDB_PORT") or str(free_port()),
               LOYALTY_SQS_PORT=os.environ.get("LOYALTY_E2E_SQS_PORT") or str(free_port()),
               LOYALTY_INVOKE_PORT=os.environ.get("LOYALTY_E2E_INVOKE_PORT") or str(free_port()))
    env.update(extra_env or {})
    # A stack a killed earlier run left behind would refuse the new ports.
    subprocess.run([os.path.join(REPO, "scripts", "stack"), "down", "e2e"], env=env, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    log_path = tmp_path_factory.mktemp("e2e") / "dev.log"
    log = open(log_path, "w")
    # Its own session: the teardown signals scripts/dev, cargo lambda, the functions and the
    # pollers together. --ignore-changes: a file written elsewhere in the checkout while the
    # test runs (an editor, git) must not restart the functions under it.
    proc = subprocess.Popen([os.path.join(REPO, "scripts", "dev"), "--ignore-changes"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not listening(port):
            if proc.poll() is not None:
                pytest.fail(f"scripts/dev exited ({proc.returncode}) before serving port {port}:\n{tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"scripts/dev did not serve port {port} within 300s:\n{tail(log_path)}")
            time.sleep(0.5)
        state = os.path.join(REPO, ".local", "e2e")
        api = demo.Api(port, env_json=os.path.join(state, "env.json"))
        try:
            demo.wait_ready(api, BUILD_TIMEOUT)
        except demo.SetupError as e:
            pytest.fail(f"{e}\n{tail(log_path)}")
        yield {"api": api, "port": port, "env": env, "log": log_path, "state": state, "proc": proc}
    finally:
        stop(proc, env)
        log.close()


def stop(proc, env):
    """scripts/dev's TERM handling stops cargo lambda, the functions and the pollers and then
    the stack; if it does not finish in time, its whole session is killed and the stack
    stopped directly."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
    subprocess.run([os.path.join(REPO, "scripts", "stack"), "down", "e2e"], env=env, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
