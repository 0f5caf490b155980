#!/usr/bin/env python3
"""The local HTTP API: one base URL for every route of template.yaml's HttpApi, as API Gateway
serves it when deployed.

  serve   listen on --port; each request that matches a route (method + path template) becomes
          an API Gateway HTTP API payload 2.0 event for the route's function, invoked through
          cargo-lambda's Lambda Invoke endpoint (--invoke-url); the function's answer is
          passed through as API Gateway passes it.
  token   print a member's RS256 token (what `scripts/token` prints).
  keys    create the local signing key and JWKS if missing and print where they are.

Routes, their authorizers and the functions' timeouts come from <state>/env.json (written by
scripts/bootstrap.py from template.yaml): no second list of routes.

What matches API Gateway:
- Routing: exact paths before templates with `{param}` (one segment) and `{param+}` (the
  rest); methods as in the template (ANY matches every method). No route: 404.
- JWT routes (the API's MemberJwt authorizer): `Authorization: Bearer <token>` (a bare token is
  accepted as API Gateway does), RS256, signature checked against the local JWKS, `iss` equal
  to the template's JwtIssuer, `aud` (or `client_id`) one of JwtAudience, `exp`/`nbf`
  honoured. The claims go into requestContext.authorizer.jwt.claims as API Gateway puts them
  (every value a string; arrays as `[a b]`), scopes from `scope`/`scp` or null.
- AWS_IAM routes: a SigV4 signature (service execute-api, the stack's region) by one of the
  two local principals of env.json (`principals`), checked by recomputing it with botocore;
  requestContext.authorizer.iam holds accessKey, accountId, callerId, principalOrgId,
  userArn, userId and cognitoIdentity as on AWS.
- No credentials: 401. Credentials that are wrong, or of the other kind (a member token on an
  IAM route, a signature on a JWT route): 403 (401 for a JWT that does not verify, as AWS).
  These answers are API Gateway's: application/json {"message":"Unauthorized"} or
  {"message":"Forbidden"} (openapi.yaml documents them next to the functions' problem+json);
  the reason is logged. A route that is not in the template: 404 problem+json.
- The event: version 2.0, routeKey "METHOD /template", rawPath, rawQueryString, cookies,
  headers (lower-case names, repeated values joined by commas), queryStringParameters (joined
  likewise), pathParameters, requestContext (accountId, apiId, authorizer, domainName,
  domainPrefix, http {method, path, protocol, sourceIp, userAgent}, requestId, routeKey,
  stage $default, time, timeEpoch), body (base64 with isBase64Encoded when it is not UTF-8).
- The operator console (console/): GET /console/ serves its static files, /console/vendor/
  the two libraries scripts/install-tools put under .tools/console, and /console/config.json
  tells it to sign as the local operator stand-in (the `operator` principal of env.json; on
  AWS it signs with Cognito identity pool credentials instead). Same origin as the API: no
  CORS locally. Not an API Gateway feature: on AWS the console is on S3 + CloudFront.
- Function errors and invocations past the function's Timeout: 500 {"message": "Internal
  Server Error"}, as API Gateway. The first invocation of each function also waits for its
  build (scripts/functions.py; up to LOYALTY_BUILD_TIMEOUT seconds, default 900); once a
  function has answered, its template Timeout applies.
"""
import argparse
import base64
import datetime as dt
import hmac
import json
import os
import re
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import local_events  # noqa: E402  (invoke, Lambda timeouts)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY_ID = "loyalty-local-1"


# --- the local identity provider: one RSA key, its JWKS ------------------------------------
def keys_dir():
    return os.environ.get("LOYALTY_KEYS_DIR") or os.path.join(REPO, ".local", "keys")


def ensure_keys(directory=None):
    """The local signing key (PEM) and its JWKS, created once under .local/keys (git-ignored)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    directory = directory or keys_dir()
    private, jwks = os.path.join(directory, "jwt-private.pem"), os.path.join(directory, "jwks.json")
    if os.path.exists(private) and os.path.exists(jwks):
        return private, jwks
    os.makedirs(directory, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=KEY_ID, use="sig", alg="RS256")
    tmp = private + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(pem)
    os.replace(tmp, private)
    with open(jwks + ".tmp", "w") as f:
        json.dump({"keys": [jwk]}, f, indent=2)
    os.replace(jwks + ".tmp", jwks)
    return private, jwks


def jwt_config(env):
    """issuer and audience of the API's JWT authorizer (from any JWT route of env.json)."""
    for r in routes(env):
        if r["jwt"]:
            return r["jwt"]
    sys.exit("gateway: the template has no JWT route")


def mint(env, sub, email=None, email_verified=False, phone=None, phone_verified=False, ttl=3600, extra=None):
    """A member's token as the identity provider (e.g. Cognito) would issue it."""
    import jwt

    private, _ = ensure_keys()
    cfg = jwt_config(env)
    now = int(time.time())
    claims = {"sub": sub, "iss": cfg["issuer"], "aud": cfg["audience"][0], "iat": now, "exp": now + ttl,
              "token_use": "id"}
    if email:
        claims.update(email=email, email_verified=bool(email_verified))
    if phone:
        claims.update(phone_number=phone, phone_number_verified=bool(phone_verified))
    claims.update(extra or {})
    with open(private, "rb") as f:
        return jwt.encode(claims, f.read(), algorithm="RS256", headers={"kid": KEY_ID})


def claim_string(v):
    """A claim as API Gateway passes it to the function: strings as they are, booleans and
    numbers in JSON's spelling, arrays as `[a b]`, objects as JSON."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + " ".join(claim_string(x) for x in v) + "]"
    if isinstance(v, dict):
        return json.dumps(v, separators=(",", ":"))
    return json.dumps(v)


# --- clients: scripts/call, scripts/demo, the tests ------------------------------------------
class Signer:
    """Credentials for a request to the local API as `who`: "operator" or "order-system" (a
    SigV4 signature by that local principal), a member id (a member token), or None."""

    def __init__(self, env):
        self.env = env
        self.tokens, self.lock = {}, threading.Lock()

    def token(self, member):
        with self.lock:
            tok, exp = self.tokens.get(member, (None, 0))
            if time.time() > exp - 60:
                tok, exp = mint(self.env, member), time.time() + 3600
                self.tokens[member] = (tok, exp)
            return tok

    def headers(self, who, method, url, body=b"", headers=None):
        """The headers to send (the given ones plus the credentials)."""
        headers = dict(headers or {})
        if who is None:
            return headers
        if who in (self.env.get("principals") or {}):
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials

            p = self.env["principals"][who]
            req = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
            SigV4Auth(Credentials(p["accessKey"], p["secretKey"]), "execute-api", self.env["env"]["AWS_REGION"]).add_auth(req)
            return dict(req.headers.items())
        headers["authorization"] = f"Bearer {self.token(who)}"
        return headers


# --- routes ----------------------------------------------------------------------------------
def routes(env):
    out = []
    for fid, fn in env["functions"].items():
        for e in fn["events"]:
            if e["Type"] != "HttpApi":
                continue
            method, path = e["Method"].upper(), e["Path"]
            pattern, names, literal = "", [], 0
            for seg in path.strip("/").split("/") if path != "/" else []:
                m = re.fullmatch(r"\{([A-Za-z0-9_.-]+)(\+?)\}", seg)
                if m:
                    names.append(m.group(1))
                    pattern += "/(.+)" if m.group(2) else "/([^/]+)"
                else:
                    literal += 1
                    pattern += "/" + re.escape(seg)
            out.append({"fid": fid, "binary": fn["binary"], "timeout": fn.get("Timeout", 3), "method": method,
                        "path": path, "routeKey": f"{method} {path}", "regex": re.compile(f"^{pattern or '/'}$"),
                        "names": names, "greedy": "+}" in path, "literal": literal,
                        "authorizer": e.get("Authorizer", "NONE"), "jwt": e.get("Jwt")})
    # API Gateway: the most specific route wins (exact paths, then more literal segments, greedy last).
    out.sort(key=lambda r: (r["greedy"], -r["literal"], len(r["names"])))
    return out


def match(table, method, path):
    """(route, path parameters) or (None, None)."""
    for r in table:
        m = r["regex"].match(path)
        if m and r["method"] in (method, "ANY"):
            params = {n: urllib.parse.unquote(v) for n, v in zip(r["names"], m.groups())}
            return r, params
    return None, None


# --- authorizers ---------------------------------------------------------------------------------
class Denied(Exception):
    def __init__(self, status, detail):
        super().__init__(detail)
        self.status, self.detail = status, detail


class Authorizers:
    def __init__(self, env):
        self.env = env
        self.account = "123456789012"
        self.region = env["env"]["AWS_REGION"]
        self.principals = {p["accessKey"]: dict(p, kind=k) for k, p in (env.get("principals") or {}).items()}
        _, jwks = ensure_keys()
        with open(jwks) as f:
            self.jwks = json.load(f)

    def authorize(self, route, method, raw_path, raw_query, headers, body):
        """The requestContext.authorizer of the request, or raises Denied."""
        auth = headers.get("authorization")
        if route["authorizer"] == "NONE":
            return None
        if route["authorizer"] == "AWS_IAM":
            if not auth and not headers.get("x-amz-date") and "X-Amz-Signature" not in raw_query:
                raise Denied(401, "this route needs a SigV4 signature (IAM)")
            return {"iam": self.iam(method, raw_path, raw_query, headers, body)}
        if not auth:
            raise Denied(401, "this route needs a member token: Authorization: Bearer <token>")
        if auth.startswith("AWS4-HMAC-SHA256"):
            raise Denied(403, "this route takes a member token (JWT), not a SigV4 signature")
        return {"jwt": self.jwt(route["jwt"], auth)}

    def jwt(self, cfg, auth):
        import jwt

        token = auth[7:].strip() if auth.lower().startswith("bearer ") else auth.strip()
        try:
            header = jwt.get_unverified_header(token)
            keys = [k for k in self.jwks["keys"] if k.get("kid") == header.get("kid")]
            if not keys:
                raise jwt.InvalidTokenError("no key of the local JWKS has this kid")
            key = jwt.PyJWK(keys[0]).key
            claims = jwt.decode(token, key, algorithms=["RS256"], issuer=cfg["issuer"],
                                options={"verify_aud": False, "require": ["exp", "iss"]})
        except jwt.PyJWTError as e:
            raise Denied(401, f"the token does not verify: {e}") from None
        aud = claims.get("aud", claims.get("client_id"))
        auds = aud if isinstance(aud, list) else [aud]
        if not any(a in cfg["audience"] for a in auds):
            raise Denied(401, "the token's audience is not one of the API's JwtAudience")
        scope = claims.get("scope") or claims.get("scp")
        scopes = (scope.split() if isinstance(scope, str) else scope) if scope else None
        return {"claims": {k: claim_string(v) for k, v in claims.items()}, "scopes": scopes}

    def iam(self, method, raw_path, raw_query, headers, body):
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        auth = headers.get("authorization") or ""
        m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*"
                         r"SignedHeaders=([^,]+),\s*Signature=([0-9a-f]{64})", auth.strip())
        if not m:
            raise Denied(403, "the Authorization header is not a SigV4 signature (AWS4-HMAC-SHA256)")
        key_id, day, region, service, signed, signature = m.groups()
        principal = self.principals.get(key_id)
        if principal is None:
            raise Denied(403, "the access key is not one of the local principals (scripts/call --as operator|order-system)")
        if (region, service) != (self.region, "execute-api"):
            raise Denied(403, f"the signature's scope must be {self.region}/execute-api")
        amz_date = headers.get("x-amz-date") or ""
        try:
            at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            raise Denied(403, "X-Amz-Date is missing or malformed") from None
        if amz_date[:8] != day or abs((dt.datetime.now(dt.timezone.utc) - at).total_seconds()) > 300:
            raise Denied(403, "the signature is expired or not yet valid (X-Amz-Date more than 5 minutes off)")
        names = signed.split(";")
        if "host" not in names:
            raise Denied(403, "the signature must sign the host header")
        host = headers.get("host", "")
        url = f"http://{host}{raw_path}" + (f"?{raw_query}" if raw_query else "")
        req = AWSRequest(method=method, url=url, data=body or b"",
                         headers={n: headers.get(n, "") for n in names})
        req.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(key_id, principal["secretKey"]), "execute-api", self.region)
        expected = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
        if not hmac.compare_digest(expected, signature):
            raise Denied(403, "the SigV4 signature does not match")
        return {"accessKey": key_id, "accountId": self.account, "callerId": principal["userId"],
                "cognitoIdentity": None, "principalOrgId": None, "userArn": principal["arn"],
                "userId": principal["userId"]}


# --- the event and the answer -------------------------------------------------------------------------
def event_of(route, params, method, raw_path, raw_query, header_pairs, body, authorizer, source_ip):
    headers, cookies = {}, []
    for k, v in header_pairs:
        k = k.lower()
        if k == "cookie":
            cookies.extend(c.strip() for c in v.split(";") if c.strip())
            continue
        headers[k] = f"{headers[k]},{v}" if k in headers else v
    query = {}
    for k, v in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
        query[k] = f"{query[k]},{v}" if k in query else v
    now = dt.datetime.now(dt.timezone.utc)
    host = headers.get("host", "127.0.0.1")
    ctx = {
        "accountId": "123456789012", "apiId": "local", "domainName": host, "domainPrefix": host.split(".")[0],
        "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                 "userAgent": headers.get("user-agent", "")},
        "requestId": base64.b32encode(uuid.uuid4().bytes)[:16].decode().rstrip("="), "routeKey": route["routeKey"],
        "stage": "$default", "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"), "timeEpoch": int(now.timestamp() * 1000),
    }
    if authorizer is not None:
        ctx["authorizer"] = authorizer
    event = {"version": "2.0", "routeKey": route["routeKey"], "rawPath": raw_path, "rawQueryString": raw_query,
             "headers": headers, "requestContext": ctx, "isBase64Encoded": False}
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if params:
        event["pathParameters"] = params
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


def problem(status, title, detail):
    return status, {"content-type": "application/problem+json"}, json.dumps(
        {"type": "about:blank", "title": title, "status": status, "detail": detail}).encode(), []


def answer_of(result):
    """(status, headers, body bytes, cookies) of a function's payload 2.0 answer, as API Gateway
    reads it: a dict with statusCode is the response; anything else is a 200 JSON body."""
    if isinstance(result, dict) and "statusCode" in result:
        headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
        for k, vs in (result.get("multiValueHeaders") or {}).items():
            headers[k.lower()] = ",".join(str(v) for v in vs)
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        return int(result["statusCode"]), headers, data, list(result.get("cookies") or [])
    return 200, {"content-type": "application/json"}, json.dumps(result).encode(), []


CONSOLE_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png"}


class Console:
    """The console's static files, its two vendored libraries and its local config."""

    def __init__(self, env, tools_dir=None):
        self.env = env
        self.root = os.path.realpath(os.path.join(REPO, "console"))
        tools = tools_dir or os.environ.get("LOYALTY_TOOLS_DIR") or os.path.join(REPO, ".tools")
        modules = os.path.join(tools, "console", "node_modules")
        # Fixed names: the console imports these, whatever the packages' layout.
        self.vendor = {"echarts.js": os.path.join(modules, "echarts", "dist", "echarts.esm.min.mjs"),
                       "aws4fetch.js": os.path.join(modules, "aws4fetch", "dist", "aws4fetch.esm.mjs")}

    def config(self):
        p = (self.env.get("principals") or {}).get("operator")
        if not p:
            return None
        return {"auth": "local", "apiBase": "", "region": self.env["env"]["AWS_REGION"],
                "credentials": {"accessKeyId": p["accessKey"], "secretAccessKey": p["secretKey"]}}

    def serve(self, method, path):
        if method not in ("GET", "HEAD"):
            return problem(405, "Method Not Allowed", "the console's files are read with GET")
        rel = path[len("/console/"):] or "index.html"
        if rel == "config.json":
            cfg = self.config()
            if cfg is None:
                return problem(404, "Not Found", "env.json names no local operator principal")
            return 200, {"content-type": "application/json", "cache-control": "no-store"}, json.dumps(cfg).encode(), []
        if rel.startswith("vendor/"):
            file = self.vendor.get(rel[len("vendor/"):])
            if file is None or not os.path.exists(file):
                return problem(404, "Not Found", f"no vendored file {rel} (scripts/install-tools installs them)")
        else:
            file = os.path.realpath(os.path.join(self.root, rel))
            if not file.startswith(self.root + os.sep) or "node_modules" in rel or rel.startswith("package"):
                return problem(404, "Not Found", f"no console file {rel}")
        ext = os.path.splitext(file)[1]
        if ext not in CONSOLE_TYPES or not os.path.isfile(file):
            return problem(404, "Not Found", f"no console file {rel}")
        with open(file, "rb") as f:
            data = f.read()
        return 200, {"content-type": CONSOLE_TYPES[ext], "cache-control": "no-cache"}, data, []


class Gateway:
    def __init__(self, env, invoke_url):
        self.env, self.invoke_url = env, invoke_url
        self.routes = routes(env)
        self.auth = Authorizers(env)
        self.console = Console(env)

    def handle(self, method, target, header_pairs, body, source_ip):
        split = urllib.parse.urlsplit(target)
        raw_path, raw_query = split.path or "/", split.query
        if raw_path == "/console":
            return 302, {"location": "/console/"}, b"", []
        if raw_path.startswith("/console/"):
            return self.console.serve(method, raw_path)
        route, params = match(self.routes, method, raw_path)
        if route is None:
            return problem(404, "Not Found", f"no route {method} {raw_path} in template.yaml's HTTP API")
        headers = {}
        for k, v in header_pairs:
            headers[k.lower()] = f"{headers[k.lower()]},{v}" if k.lower() in headers else v
        try:
            authorizer = self.auth.authorize(route, method, raw_path, raw_query, headers, body)
        except Denied as d:
            local_events.log(f"gateway: {method} {raw_path}: {d.status}: {d.detail}")
            message = "Unauthorized" if d.status == 401 else "Forbidden"
            return d.status, {"content-type": "application/json"}, json.dumps({"message": message}).encode(), []
        event = event_of(route, params, method, raw_path, raw_query, header_pairs, body, authorizer, source_ip)
        try:
            result = local_events.invoke_fn(self.invoke_url, {"binary": route["binary"], "Timeout": route["timeout"]}, event)
        except local_events.InvokeError as e:
            local_events.log(f"gateway: {route['routeKey']}: {e}")
            return 500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}', []
        return answer_of(result)


def make_server(gateway, host, port):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            if os.environ.get("LOYALTY_GATEWAY_LOG") == "1":
                local_events.log("gateway:", fmt % args)

        def do(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                status, headers, data, cookies = gateway.handle(self.command, self.path, list(self.headers.items()),
                                                                body, self.client_address[0])
            except Exception as e:  # a gateway fault is a 500, never a hung connection
                local_events.log(f"gateway: {type(e).__name__}: {e}")
                status, headers, data, cookies = 500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}', []
            self.send_response(status)
            for k, v in headers.items():
                if k not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(k, v)
            for c in cookies:
                self.send_header("set-cookie", c)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve(gateway, host, port):
    import signal

    server = make_server(gateway, host, port)
    local_events.log(f"gateway: the HTTP API on http://{host}:{port}/ ({len(gateway.routes)} routes) -> {gateway.invoke_url}")
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env-json", default=local_events.default_env_json())
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=int(os.environ.get("LOYALTY_HTTP_PORT", "9000")))
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--invoke-url", required=True, help="cargo lambda watch's invoke endpoint")
    t = sub.add_parser("token")
    t.add_argument("member")
    t.add_argument("--email")
    t.add_argument("--email-verified", action="store_true")
    t.add_argument("--phone")
    t.add_argument("--phone-verified", action="store_true")
    t.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid (default 3600)")
    sub.add_parser("keys")
    a = ap.parse_args(argv)
    if a.command == "keys":
        print("\n".join(ensure_keys()))
        return
    env = local_events.load_env(a.env_json)
    if a.command == "token":
        print(mint(env, a.member, a.email, a.email_verified, a.phone, a.phone_verified, a.ttl))
        return
    serve(Gateway(env, a.invoke_url), a.host, a.port)


if __name__ == "__main__":
    main()
