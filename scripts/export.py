#!/usr/bin/env python3
"""scripts/export: start an export on the local stack, follow it and download its files (see scripts/export)."""
import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

import boto3
from botocore.config import Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import call  # noqa: E402
import gateway  # noqa: E402
import local_events  # noqa: E402


def request(env, method, path, body=None, headers=None):
    url = call.base_url().rstrip("/") + path
    data = json.dumps(body).encode() if body is not None else b""
    h = {"content-type": "application/json", **(headers or {})}
    h = gateway.Signer(env).headers("operator", method, url, data, h)
    req = urllib.request.Request(url, data=data or None, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise SystemExit(f"export: {method} {path} answered {e.code}: {e.read().decode(errors='replace')}")
    except urllib.error.URLError as e:
        raise SystemExit(f"export: cannot reach {url}: {e.reason} (is scripts/dev running?)")


def main(argv=None):
    ap = argparse.ArgumentParser(description="export members, ledger and coupons to the migration bucket and download them")
    ap.add_argument("--what", default="members,ledger,coupons", help="comma-separated kinds")
    ap.add_argument("--segments", type=int, default=8)
    ap.add_argument("--personal-data", action="store_true")
    ap.add_argument("--key", help="Idempotency-Key (a retry with it follows the same export)")
    ap.add_argument("--out", help="download folder (default .local/exports/<exportId>)")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--env-json", default=local_events.default_env_json())
    a = ap.parse_args(argv)
    env = local_events.load_env(a.env_json)
    body = {"what": [w.strip() for w in a.what.split(",") if w.strip()], "segments": a.segments, "personalData": a.personal_data}
    headers = {"idempotency-key": a.key} if a.key else {}
    started = time.time()
    x = request(env, "POST", "/exports", body, headers)
    export_id = x["exportId"]
    print(f"export {export_id}: started, {x['segments']} segments, s3://{x['bucket']}/{x['prefix']}", flush=True)
    last = None
    while x["state"] != "done":
        if time.time() - started > a.timeout:
            raise SystemExit(f"export: not done after {a.timeout:.0f} s")
        time.sleep(1)
        x = request(env, "GET", f"/exports/{export_id}")
        line = f"{x['state']}: {x['segmentsDone']}/{x['segments']} segments, " + ", ".join(
            f"{k} {c['lines']} lines" for k, c in x["counts"].items())
        if line != last:
            print(f"export {export_id}: {line}", flush=True)
            last = line
    for kind, c in x["counts"].items():
        print(f"  {kind}: {c['lines']} lines, {c['points']} points")
    e = env["env"]
    s3 = boto3.client("s3", endpoint_url=e["AWS_ENDPOINT_URL_S3"], region_name=e["AWS_REGION"],
                      aws_access_key_id=e["AWS_ACCESS_KEY_ID"], aws_secret_access_key=e["AWS_SECRET_ACCESS_KEY"],
                      config=Config(s3={"addressing_style": "path"}))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = a.out or os.path.join(repo, ".local", "exports", export_id)
    os.makedirs(out, exist_ok=True)
    manifest = json.loads(s3.get_object(Bucket=x["bucket"], Key=x["manifestKey"])["Body"].read())
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    for key in manifest["objects"]:
        s3.download_file(x["bucket"], key, os.path.join(out, os.path.basename(key)))
    print(f"export {export_id}: s3://{x['bucket']}/{x['prefix']} ({len(manifest['objects'])} objects + manifest.json), downloaded to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
