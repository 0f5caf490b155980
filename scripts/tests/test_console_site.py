"""The operator console as scripts/console-publish uploads it: every module a page imports and
every file index.html names is in the site, config.json holds no credentials, and the vendored
libraries are the pinned ones. No stack or browser needed."""
import json
import os
import posixpath
import re

import console_publish

CONFIG = {"auth": "cognito", "apiBase": "https://api.example.com", "region": "ap-east-1",
          "userPoolId": "ap-east-1_x", "userPoolClientId": "c", "identityPoolId": "ap-east-1:1"}


def test_every_import_of_the_published_site_resolves_inside_it():
    files = {key: data for key, data, _ in console_publish.site(CONFIG)}
    assert {"index.html", "app.js", "api.js", "config.json", "vendor/echarts.js", "vendor/aws4fetch.js"} <= set(files)
    html = files["index.html"].decode()
    for ref in re.findall(r'(?:src|href)="([^"#:]+)"', html):
        assert ref in files, f"index.html names {ref}, which is not published"
    for key, data in files.items():
        if not key.endswith(".js") or key.startswith("vendor/"):
            continue
        for spec in re.findall(r"""(?:import|from)\s*['"](\.[^'"]+)['"]""", data.decode()):
            target = posixpath.normpath(posixpath.join(posixpath.dirname(key), spec))
            assert target in files, f"{key} imports {spec} ({target}), which is not published"
    config = json.loads(files["config.json"])
    assert config == CONFIG and "credentials" not in config


def test_the_vendored_libraries_are_the_pinned_versions():
    with open(os.path.join(console_publish.REPO, "console", "package.json")) as f:
        pins = json.load(f)["dependencies"]
    tools = os.environ.get("LOYALTY_TOOLS_DIR") or os.path.join(console_publish.REPO, ".tools")
    for name, version in pins.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} is not pinned exactly"
        with open(os.path.join(tools, "console", "node_modules", name, "package.json")) as f:
            assert json.load(f)["version"] == version, name


def test_the_local_gateway_serves_the_console_and_nothing_else_of_the_checkout():
    import gateway

    env = {"env": {"AWS_REGION": "us-east-1"},
           "principals": {"operator": {"accessKey": "AKIALOCALOPERATOR000", "secretKey": "s"},
                          "order-system": {"accessKey": "AKIALOCALORDERSYSTEM", "secretKey": "o"}}}
    c = gateway.Console(env)
    status, headers, body, _ = c.serve("GET", "/console/")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"app.js" in body
    status, headers, body, _ = c.serve("GET", "/console/vendor/echarts.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    status, _, body, _ = c.serve("GET", "/console/config.json")
    cfg = json.loads(body)
    # The local operator stand-in, never the order system's key.
    assert status == 200 and cfg["auth"] == "local" and cfg["credentials"]["accessKeyId"] == "AKIALOCALOPERATOR000"
    assert b"AKIALOCALORDERSYSTEM" not in body
    for path in ("/console/../scripts/gateway.py", "/console/package.json", "/console/package-lock.json",
                 "/console/vendor/../../README.md", "/console/nothing.js"):
        assert c.serve("GET", path)[0] == 404, path
    assert c.serve("POST", "/console/index.html")[0] == 405
