"""The one local HTTP API (scripts/gateway.py) over template.yaml's real routes, in front of a
fake Lambda Invoke endpoint: routing, API Gateway's payload 2.0 events, the JWT and IAM
authorizers, and what the client answers look like. No Rust function is needed."""
import base64
import datetime as dt
import json
import os
import threading
import time
import urllib.error
import urllib.request

import pytest

import gateway
from conftest import HERE, bootstrap

REPO = os.path.dirname(os.path.dirname(HERE))


@pytest.fixture()
def api(moto_port, tmp_path, fake_lambda, monkeypatch):
    """template.yaml's stack on moto, the gateway on a free port, its keys in tmp_path."""
    monkeypatch.setenv("LOYALTY_KEYS_DIR", str(tmp_path / "keys"))
    stack = bootstrap(moto_port, tmp_path, os.path.join(REPO, "template.yaml"), moto_port)
    env = stack["env"]
    gw = gateway.Gateway(env, fake_lambda.url)
    server = gateway.make_server(gw, "127.0.0.1", 0)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()

    class Api:
        base = f"http://127.0.0.1:{port}"
        signer = gateway.Signer(env)

        def __init__(self):
            self.env, self.fake = env, fake_lambda

        def send(self, method, path, body=b"", who=None, headers=None):
            url = self.base + path
            sent = self.signer.headers(who, method, url, body, headers or {}) if who else dict(headers or {})
            req = urllib.request.Request(url, data=body or None, method=method, headers=sent)
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, dict(r.headers), r.read()
            except urllib.error.HTTPError as e:
                return e.code, dict(e.headers), e.read()

        def last_event(self):
            name, payload = self.fake.calls[-1]
            return name, payload

    yield Api()
    server.shutdown()


def http_routes(env):
    return [(fn["binary"], e) for fn in env["functions"].values() for e in fn["events"] if e["Type"] == "HttpApi"]


def concrete(path):
    return path.replace("{id}", "m-1").replace("{orderId}", "o-1").replace("{claimId}", "c-1")


def test_every_route_of_the_template_reaches_its_function_with_its_authorizer(api):
    routes = http_routes(api.env)
    assert len(routes) >= 20
    for binary, e in routes:
        path = concrete(e["Path"])
        iam = e["Authorizer"] == "AWS_IAM"
        right, wrong = ("operator", "m-1") if iam else ("m-1", "operator")
        calls = len(api.fake.calls)
        status, headers, _ = api.send(e["Method"], path, b"{}", who=right, headers={"content-type": "application/json"})
        assert status == 200, (e, status)
        name, event = api.last_event()
        assert (name, event["routeKey"]) == (binary, f'{e["Method"]} {e["Path"]}')
        assert event["requestContext"]["routeKey"] == event["routeKey"]
        assert event["rawPath"] == path and event["requestContext"]["http"]["method"] == e["Method"]
        if "{id}" in e["Path"]:
            assert event["pathParameters"]["id"] == "m-1"
        auth = event["requestContext"]["authorizer"]
        assert list(auth) == (["iam"] if iam else ["jwt"])
        # Without credentials: API Gateway's 401, and the function is not invoked.
        status, headers, body = api.send(e["Method"], path, b"{}")
        assert (status, headers["content-type"], json.loads(body)) == (401, "application/json", {"message": "Unauthorized"}), e
        # The other kind of credentials: 403 (a member token on an IAM route, as on AWS).
        status, _, body = api.send(e["Method"], path, b"{}", who=wrong)
        assert (status, json.loads(body)) == (403, {"message": "Forbidden"}), e
        assert len(api.fake.calls) == calls + 1


def test_an_unknown_route_or_method_is_a_404_problem(api):
    for method, path in [("GET", "/"), ("GET", "/nothing"), ("PATCH", "/members"), ("GET", "/members/a/b/c/d"),
                         ("GET", "/lambda-url/signup/members/x")]:
        status, headers, body = api.send(method, path, who="m-1")
        assert status == 404 and headers["content-type"] == "application/problem+json", (method, path)
        assert json.loads(body)["status"] == 404
    assert not api.fake.calls


def test_the_event_is_api_gateway_s_payload_2_0(api):
    token = gateway.mint(api.env, "m-1", email="A@Example.com", email_verified=True)
    status, _, _ = api.send("GET", "/members/m-1/ledger?limit=5&cursor=a&cursor=b",
                            headers={"authorization": f"Bearer {token}", "X-Trace": "t1", "cookie": "a=1; b=2"})
    assert status == 200
    _, event = api.last_event()
    assert event["version"] == "2.0" and event["routeKey"] == "GET /members/{id}/ledger"
    assert event["rawQueryString"] == "limit=5&cursor=a&cursor=b"
    assert event["queryStringParameters"] == {"limit": "5", "cursor": "a,b"}
    assert event["headers"]["x-trace"] == "t1" and "cookie" not in event["headers"]
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["pathParameters"] == {"id": "m-1"} and event["isBase64Encoded"] is False and "body" not in event
    ctx = event["requestContext"]
    assert ctx["stage"] == "$default" and ctx["requestId"] and ctx["http"]["path"] == "/members/m-1/ledger"
    assert abs(ctx["timeEpoch"] / 1000 - time.time()) < 30
    dt.datetime.strptime(ctx["time"], "%d/%b/%Y:%H:%M:%S %z")
    claims = ctx["authorizer"]["jwt"]["claims"]
    # API Gateway passes every claim as a string.
    assert claims["sub"] == "m-1" and claims["email"] == "A@Example.com" and claims["email_verified"] == "true"
    assert claims["iss"] == api.env["functions"]["SignupFunction"]["events"][0]["Jwt"]["issuer"]
    assert all(isinstance(v, str) for v in claims.values())


def test_iam_callers_are_the_local_principals_with_aws_s_fields(api):
    for who in ("operator", "order-system"):
        status, _, _ = api.send("POST", "/internal/members/m-1/purchases", b'{"a":1}', who=who,
                                headers={"content-type": "application/json"})
        assert status == 200
        iam = api.last_event()[1]["requestContext"]["authorizer"]["iam"]
        p = api.env["principals"][who]
        assert iam["userArn"] == p["arn"] and iam["accessKey"] == p["accessKey"]
        assert set(iam) == {"accessKey", "accountId", "callerId", "cognitoIdentity", "principalOrgId", "userArn", "userId"}
    # The functions' allow-lists name the two local roles.
    assert api.env["env"]["ORDER_SYSTEM_PRINCIPALS"] in api.env["principals"]["order-system"]["arn"]
    assert api.env["env"]["OPERATOR_PRINCIPALS"] in api.env["principals"]["operator"]["arn"]


def test_a_body_that_is_not_utf8_is_sent_base64_encoded(api):
    raw = b'\xff\xfe{"a": 1}'
    status, _, _ = api.send("POST", "/members", raw, who="m-1", headers={"content-type": "application/json"})
    assert status == 200
    event = api.last_event()[1]
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == raw
    api.send("POST", "/members", '{"name": "李"}'.encode(), who="m-1")
    event = api.last_event()[1]
    assert event["isBase64Encoded"] is False and event["body"] == '{"name": "李"}'


def test_the_function_s_answer_passes_through(api):
    api.fake.http_answer = {"statusCode": 409, "headers": {"content-type": "application/problem+json", "retry-after": "3"},
                            "cookies": ["s=1"], "body": base64.b64encode(b'{"status":409}').decode(), "isBase64Encoded": True}
    status, headers, body = api.send("GET", "/members/m-1", who="m-1")
    assert (status, headers["content-type"], headers["retry-after"], body) == (409, "application/problem+json", "3", b'{"status":409}')
    assert {k.lower(): v for k, v in headers.items()}["set-cookie"] == "s=1"


def test_tokens_and_signatures_that_do_not_verify_are_refused(api):
    def with_auth(value, method="GET", path="/members/m-1"):
        return api.send(method, path, headers={"authorization": value})[0]

    good = gateway.mint(api.env, "m-1")
    assert with_auth(f"Bearer {good}") == 200
    assert with_auth(good) == 200  # API Gateway takes the token without "Bearer" too
    assert with_auth(f"Bearer {gateway.mint(api.env, 'm-1', ttl=-120)}") == 401  # expired
    assert with_auth(f"Bearer {gateway.mint(api.env, 'm-1', extra={'aud': 'another-app'})}") == 401
    assert with_auth(f"Bearer {gateway.mint(api.env, 'm-1', extra={'iss': 'https://elsewhere'})}") == 401
    head, body, sig = good.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"sub": "m-2", "iss": "x", "exp": 9999999999}).encode()).decode().rstrip("=")
    assert with_auth(f"Bearer {head}.{forged}.{sig}") == 401
    # A signature: tampered, by an unknown key, or with the body changed after signing.
    url = api.base + "/campaigns"
    signed = api.signer.headers("operator", "POST", url, b'{"a":1}', {"content-type": "application/json"})
    req = lambda h, data=b'{"a":1}': urllib.request.Request(url, data=data, method="POST", headers=h)

    def status(r):
        try:
            return urllib.request.urlopen(r, timeout=10).status
        except urllib.error.HTTPError as e:
            return e.code

    assert status(req(signed)) == 200
    assert status(req(signed, b'{"a":2}')) == 403
    bad = dict(signed, Authorization=signed["Authorization"][:-4] + "0000")
    assert status(req(bad)) == 403
    other = dict(signed, Authorization=signed["Authorization"].replace(api.env["principals"]["operator"]["accessKey"], "AKIAUNKNOWN000000000"))
    assert status(req(other)) == 403


def test_a_function_error_or_timeout_is_api_gateway_s_500(api, monkeypatch):
    api.fake.http_answer = None  # the fake's answer is not a response: API Gateway takes it as a 200 JSON body
    status, headers, body = api.send("GET", "/members/m-1", who="m-1")
    assert (status, body) == (200, b"null")
    monkeypatch.setattr(gateway.local_events, "invoke_fn", lambda *a: (_ for _ in ()).throw(
        gateway.local_events.InvokeError("signup timed out after 11s", timed_out=True)))
    status, headers, body = api.send("GET", "/members/m-1", who="m-1")
    assert status == 500 and json.loads(body) == {"message": "Internal Server Error"}
