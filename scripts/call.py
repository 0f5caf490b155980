#!/usr/bin/env python3
"""scripts/call: one request to the local API with real credentials (see scripts/call)."""
import argparse
import os
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway  # noqa: E402
import local_events  # noqa: E402


def base_url():
    return os.environ.get("LOYALTY_API_URL") or f"http://127.0.0.1:{os.environ.get('LOYALTY_HTTP_PORT', '9000')}"


def main(argv=None):
    ap = argparse.ArgumentParser(description="one request to the local API with real credentials")
    ap.add_argument("--as", dest="who", help="operator, order-system or a member id")
    ap.add_argument("-i", action="store_true", help="print the status line and headers")
    ap.add_argument("-H", action="append", default=[], help="an extra header 'name: value'")
    ap.add_argument("--env-json", default=local_events.default_env_json())
    ap.add_argument("method")
    ap.add_argument("path")
    ap.add_argument("body", nargs="?")
    a = ap.parse_args(argv)
    env = local_events.load_env(a.env_json)
    body = b""
    if a.body is not None:
        body = open(a.body[1:], "rb").read() if a.body.startswith("@") else a.body.encode()
    headers = {}
    for h in a.H:
        k, _, v = h.partition(":")
        headers[k.strip().lower()] = v.strip()
    if body and "content-type" not in headers:
        headers["content-type"] = "application/json"
    url = base_url().rstrip("/") + (a.path if a.path.startswith("/") else "/" + a.path)
    headers = gateway.Signer(env).headers(a.who, a.method.upper(), url, body, headers)
    req = urllib.request.Request(url, data=body or None, method=a.method.upper(), headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=float(os.environ.get("LOYALTY_CALL_TIMEOUT", "900")))
    except urllib.error.HTTPError as e:
        resp = e
    except urllib.error.URLError as e:
        sys.exit(f"call: cannot reach {url}: {e.reason} (is scripts/dev running?)")
    data = resp.read()
    if a.i:
        print(f"HTTP/1.1 {resp.status} {resp.reason}")
        for k, v in resp.headers.items():
            print(f"{k}: {v}")
        print()
    sys.stdout.write(data.decode("utf-8", "replace"))
    if data and not data.endswith(b"\n"):
        sys.stdout.write("\n")
    return 0 if 200 <= resp.status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
