#!/usr/bin/env python3
"""Publish the operator console to the stack's bucket (behind its CloudFront distribution).

  scripts/console-publish [--stack loyalty] [--region R]   upload and invalidate
  scripts/console-publish --out DIR [--config FILE]        write the site to DIR only

The site is console/ as it is (ES modules, no build step), the two libraries under vendor/
(from .tools/console, pinned by console/package.json) and a config.json made from the stack's
outputs: the API's URL, the region and the operators' user pool, app client and identity
pool. Nothing secret is in it: credentials come from Cognito at sign-in.
"""
import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(REPO, "console")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".json": "application/json"}


def vendor_files(tools=None):
    tools = tools or os.environ.get("LOYALTY_TOOLS_DIR") or os.path.join(REPO, ".tools")
    modules = os.path.join(tools, "console", "node_modules")
    # The names scripts/gateway.py serves them under locally: the pages import these.
    return {"vendor/echarts.js": os.path.join(modules, "echarts", "dist", "echarts.esm.min.mjs"),
            "vendor/aws4fetch.js": os.path.join(modules, "aws4fetch", "dist", "aws4fetch.esm.mjs")}


def site(config, tools=None):
    """[(key, bytes, content type)] of the whole site."""
    out = []
    for root, _, files in os.walk(SOURCE):
        if "node_modules" in root:
            continue
        for name in sorted(files):
            ext = os.path.splitext(name)[1]
            if ext not in TYPES or name.startswith("package"):
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out.append((os.path.relpath(path, SOURCE).replace(os.sep, "/"), f.read(), TYPES[ext]))
    for key, path in vendor_files(tools).items():
        if not os.path.exists(path):
            sys.exit(f"console-publish: {path} is missing: run scripts/install-tools")
        with open(path, "rb") as f:
            out.append((key, f.read(), TYPES[".js"]))
    out.append(("config.json", json.dumps(config, indent=2).encode(), TYPES[".json"]))
    return out


def config_from_outputs(outputs, region):
    return {"auth": "cognito", "apiBase": outputs["ApiUrl"], "region": region,
            "userPoolId": outputs["OperatorUserPoolId"], "userPoolClientId": outputs["OperatorUserPoolClientId"],
            "identityPoolId": outputs["OperatorIdentityPoolId"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stack", default="loyalty")
    ap.add_argument("--region")
    ap.add_argument("--out", help="write the site here instead of uploading it")
    ap.add_argument("--config", help="with --out: a config.json to use instead of the stack's outputs")
    a = ap.parse_args(argv)
    if a.out and a.config:
        with open(a.config) as f:
            config, outputs = json.load(f), None
    else:
        import boto3

        session = boto3.session.Session(region_name=a.region)
        stack = session.client("cloudformation").describe_stacks(StackName=a.stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        config = config_from_outputs(outputs, session.region_name)
    files = site(config)
    if a.out:
        for key, data, _ in files:
            path = os.path.join(a.out, key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        print(f"console-publish: {len(files)} files in {a.out}")
        return
    s3 = session.client("s3")
    for key, data, ctype in files:
        # The entry points are read anew on each visit; the rest may be cached for minutes.
        cache = "no-cache" if key in ("index.html", "config.json") else "public, max-age=300"
        s3.put_object(Bucket=outputs["ConsoleBucketName"], Key=key, Body=data, ContentType=ctype, CacheControl=cache)
    session.client("cloudfront").create_invalidation(
        DistributionId=outputs["ConsoleDistributionId"],
        InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": f"console-{time.time_ns()}"})
    print(f"console-publish: {len(files)} files -> {outputs['ConsoleUrl']}")


if __name__ == "__main__":
    main()
