#!/usr/bin/env python3
"""scripts/import: upload a member file to the local migration bucket and follow it (see scripts/import)."""
import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import boto3
from botocore.config import Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import call  # noqa: E402
import gateway  # noqa: E402
import local_events  # noqa: E402


def progress(env, key):
    url = call.base_url().rstrip("/") + "/imports?" + urllib.parse.urlencode({"key": key})
    headers = gateway.Signer(env).headers("operator", "GET", url, b"", {})
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return json.loads(r.read())["imports"][0]
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None  # the notification is not delivered yet
        raise SystemExit(f"import: GET /imports answered {e.code}: {e.read().decode(errors='replace')}")
    except urllib.error.URLError as e:
        raise SystemExit(f"import: cannot reach {url}: {e.reason} (is scripts/dev running?)")


def main(argv=None):
    ap = argparse.ArgumentParser(description="upload a member file to the migration bucket and follow its import")
    ap.add_argument("--key", help="object key (default imports/<file name>)")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--env-json", default=local_events.default_env_json())
    ap.add_argument("file")
    a = ap.parse_args(argv)
    env = local_events.load_env(a.env_json)
    buckets = env.get("buckets") or {}
    if not buckets:
        raise SystemExit("import: the local stack has no bucket (restart it: scripts/dev)")
    bucket = next(iter(buckets.values()))
    key = a.key or "imports/" + os.path.basename(a.file)
    if not key.startswith("imports/"):
        raise SystemExit("import: the key must be under imports/ (only those notify the import queue)")
    e = env["env"]
    s3 = boto3.client("s3", endpoint_url=e["AWS_ENDPOINT_URL_S3"], region_name=e["AWS_REGION"],
                      aws_access_key_id=e["AWS_ACCESS_KEY_ID"], aws_secret_access_key=e["AWS_SECRET_ACCESS_KEY"],
                      config=Config(s3={"addressing_style": "path"}))
    started = time.time()
    s3.upload_file(a.file, bucket, key)
    print(f"import: uploaded {a.file} to s3://{bucket}/{key}")
    seen = None
    last = None
    while time.time() - started < a.timeout:
        p = progress(env, key)
        # The latest import of the key that began after this upload.
        if p and (seen is None or p["importId"] != seen) and p["createdAt"] >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started - 1)):
            seen = p["importId"]
        if p and p["importId"] == seen:
            line = f"{p['state']}: {p['chunksDone']}/{p['chunks']} chunks, lines {p['lines']}, imported {p['imported']}, updated {p['updated']}, unchanged {p['unchanged']}, rejected {p['rejected']}"
            if line != last:
                print(f"import {p['importId']}: {line}", flush=True)
                last = line
            if p["state"] in ("done", "failed"):
                try:
                    body = s3.get_object(Bucket=bucket, Key=p["rejectsKey"])["Body"].read().decode()
                except s3.exceptions.NoSuchKey:
                    body = ""
                if body.strip():
                    print(f"rejects (s3://{bucket}/{p['rejectsKey']}):")
                    sys.stdout.write(body)
                return 0 if p["rejected"] == 0 and p["state"] == "done" else 1
        time.sleep(1)
    raise SystemExit(f"import: not done after {a.timeout:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
