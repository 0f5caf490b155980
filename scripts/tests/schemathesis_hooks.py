"""Schemathesis hooks (SCHEMATHESIS_HOOKS=schemathesis_hooks, scripts/tests on PYTHONPATH): every
request of the contract fuzzing goes to the one local API with the credentials its route takes
on AWS: a SigV4 signature of the order system (/internal routes) or of an operator (the other
IAM routes), or a member token whose `sub` is the member of the path (a member acting on their
own data; POST /members signs up a new member each time). The signature is made over the
request exactly as sent (a requests auth hook), as any SigV4 client makes it. A case without
an Authorization header (a negative case leaving out the credentials the security schemes
require) is sent without credentials, as generated."""
import os
import sys
import uuid

import requests
import schemathesis

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import gateway  # noqa: E402
import local_events  # noqa: E402

SIGNER = gateway.Signer(local_events.load_env(os.environ["LOYALTY_FUZZ_ENV_JSON"]))
PREFIX = os.environ.get("LOYALTY_FUZZ_MEMBER_PREFIX", "fuzz")


class Credentials(requests.auth.AuthBase):
    def __init__(self, who):
        self.who = who

    def __call__(self, r):
        body = r.body.encode() if isinstance(r.body, str) else (r.body or b"")
        headers = {k: v for k, v in r.headers.items() if k.lower() != "authorization"}
        r.headers.clear()
        r.headers.update(SIGNER.headers(self.who, r.method, r.url, body, headers))
        return r


def caller(case):
    op = case.operation
    security = op.definition.raw.get("security")
    if security is None:
        security = op.schema.raw_schema.get("security") or []
    if any("sigv4" in s for s in security):
        return "order-system" if op.path.startswith("/internal/") else "operator"
    member = (case.path_parameters or {}).get("id")
    return str(member) if member not in (None, "") else f"{PREFIX}-{uuid.uuid4().hex[:12]}"


@schemathesis.hook
def before_call(context, case, kwargs):
    if any(k.lower() == "authorization" for k in (case.headers or {})):
        kwargs["auth"] = Credentials(caller(case))
