#!/usr/bin/env python3
"""Create the local DynamoDB tables, SQS queues, S3 buckets and EventBridge buses that template.yaml
defines, and write the environment the functions and tests run with.

template.yaml is the single source of truth: tables (with their streams), queues, buses,
function environment variables and event sources are all read from it, so nothing here names
a table, queue, bus, function or variable. Resources whose Condition is false are skipped.
Run with .tools/venv/bin/python (boto3 and cfn-lint); scripts/stack calls it after both local
services answer. Idempotent: existing tables, queues and buses are kept.

LOYALTY_LOCAL_STREAMS=0 leaves the tables' streams out (their DynamoDB event sources are then
disabled): DynamoDB Local makes writes to a stream table created after many stream records
exist slower, and the test profile's table needs none (the events tests make stream tables of
their own, after the suite has written to the shared table).

Locally only, every bus also gets a sink: a queue `<bus>-local-sink` and a rule sending it
every event of the bus, which `scripts/events tail` prints (on AWS, consumers add their own
rules).

Secrets (AWS::SecretsManager::Secret) get a local stand-in instead: a file under
<out>/secrets/<logical id> (SecretString, or a random value of GenerateSecretString's length,
kept across restarts), and a function variable `<NAME>_ARN: !Ref <secret>` becomes
`<NAME>_FILE=<that file>` (loyalty::secrets reads either), so nothing local calls Secrets
Manager and init stays free of network calls.

Writes <out>/env (shell `export` lines) and <out>/env.json:
  env        the variables to export: endpoints, region, fake credentials and the union of
             every function's Environment.Variables (Globals included), resolved locally
  tables     logical id -> local table name
  streams    logical id of a table -> its stream's ARN (tables with a StreamSpecification)
  queues     logical id -> {name, url, arn}
  buses      logical id -> {name, arn, sink: {name, url, arn, rule}}
  buckets    logical id -> bucket name (created with their encryption and their notifications
             to queues of the template)
  functions  logical id -> {binary, Timeout, MemorySize, env, events}; each event has Name and
             Type, SQS events QueueUrl, QueueArn, BatchSize, MaximumBatchingWindowInSeconds,
             FunctionResponseTypes, Enabled; DynamoDB events StreamArn, Table, StartingPosition,
             BatchSize, MaximumBatchingWindowInSeconds, FunctionResponseTypes,
             BisectBatchOnFunctionError, MaximumRetryAttempts, MaximumRecordAgeInSeconds,
             OnFailure ({QueueUrl, QueueArn} of a queue of the template, or null), Enabled;
             Schedule/ScheduleV2 events Schedule (the expression),
             ScheduleExpressionTimezone, Input, Enabled; HttpApi/Api events Method and Path,
             HttpApi events also Authorizer (AWS_IAM, NONE or a JWT authorizer's name) and Jwt
             ({issuer, audience, identitySource}, resolved from the API's authorizer)
  principals the two local IAM callers (order-system, operator): fixed access keys and their
             role-session ARNs. Locally OrderSystemPrincipals / OperatorPrincipals default to
             their role names (LOYALTY_PARAM_<name> overrides), so the functions classify them
             as on AWS; scripts/gateway.py verifies their SigV4 signatures.
"""
import argparse
import json
import os
import re
import secrets
import shlex
import string
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from cfnlint.decode import decode

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
DDB_ACCOUNT = "000000000000"  # the account id DynamoDB Local reports in its ARNs
# NoEcho parameters without a default are secrets that only a deployment supplies.
LOCAL_SECRET = "local-dev-secret-not-for-production-0000000000"
# The two local IAM principals (scripts/gateway.py verifies their SigV4 signatures; scripts/call
# signs with them): fixed access keys of role sessions whose role names are the local values of
# the template's allow-list parameters, so the functions tell them apart as on AWS.
LOCAL_PRINCIPALS = {
    "order-system": {"accessKey": "AKIALOCALORDERSYSTEM", "secretKey": "local-order-system-secret-not-for-aws",
                     "role": "order-system", "parameter": "OrderSystemPrincipals"},
    "operator": {"accessKey": "AKIALOCALOPERATOR000", "secretKey": "local-operator-secret-not-for-aws",
                 "role": "loyalty-operators", "parameter": "OperatorPrincipals"},
}
# Parameters whose local value is not the template's Default (LOYALTY_PARAM_<name> still wins).
LOCAL_PARAMETERS = {p["parameter"]: p["role"] for p in LOCAL_PRINCIPALS.values()}
PSEUDO = {
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "loyalty-local",
    "AWS::AccountId": "123456789012",  # moto's default account, as in the queue ARNs
}
# CloudFormation properties of AWS::SQS::Queue that are also SQS queue attributes.
QUEUE_ATTRIBUTES = (
    "DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout", "FifoQueue", "ContentBasedDeduplication", "DeduplicationScope",
    "FifoThroughputLimit", "RedrivePolicy", "RedriveAllowPolicy",
)


class Fail(Exception):
    pass


NO_VALUE = object()  # !Ref AWS::NoValue: the property is left out


def text(value):
    """A resolved value as CloudFormation would render it into a string property."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


class Local:
    def __init__(self, template, profile, streams=True):
        self.profile = profile
        self.with_streams = streams
        self.resources = template.get("Resources") or {}
        self.parameters = template.get("Parameters") or {}
        self.conditions = template.get("Conditions") or {}
        self.condition_values = {}
        self.globals = (template.get("Globals") or {}).get("Function") or {}
        self.pseudo = PSEUDO
        self.tables = {}  # logical id -> table name
        self.streams = {}  # logical id of a table -> stream ARN
        self.queues = {}  # logical id -> {name, url, arn}
        self.secrets = {}  # logical id -> local stand-in file
        self.buses = {}  # logical id -> {name, arn, sink}
        self.buckets = {}  # logical id -> bucket name

    def of_type(self, kind):
        """Resources of a type that the template's conditions create."""
        return [(lid, r.get("Properties") or {}) for lid, r in self.resources.items()
                if r.get("Type") == kind and self.created(lid, r)]

    def created(self, lid, resource):
        cond = resource.get("Condition")
        return cond is None or self.condition(cond, f"{lid}.Condition")

    def condition(self, name, where):
        if name not in self.condition_values:
            if name not in self.conditions:
                raise Fail(f"{where}: no condition {name} in Conditions")
            self.condition_values[name] = None  # a cycle reads as an error below
            self.condition_values[name] = self.evaluate(self.conditions[name], f"Conditions.{name}")
        if self.condition_values[name] is None:
            raise Fail(f"{where}: condition {name} refers to itself")
        return self.condition_values[name]

    def evaluate(self, expr, where):
        """A condition: Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition."""
        if isinstance(expr, dict) and len(expr) == 1:
            (fn, arg), = expr.items()
            if fn == "Condition":
                return self.condition(arg, where)
            if fn == "Fn::Equals":
                a, b = (text(self.resolve(v, where)) for v in arg)
                return a == b
            if fn == "Fn::Not":
                return not self.evaluate(arg[0], where)
            if fn == "Fn::And":
                return all(self.evaluate(c, where) for c in arg)
            if fn == "Fn::Or":
                return any(self.evaluate(c, where) for c in arg)
        raise Fail(f"{where}: {expr} is not a condition bootstrap can evaluate (Equals, Not, And, Or, Condition)")

    # --- intrinsic functions -----------------------------------------------------------
    def resolve(self, value, where):
        if isinstance(value, list):
            return [self.resolve(v, where) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (fn, arg), = value.items()
            if fn == "Ref":
                return self.ref(arg, where)
            if fn == "Fn::GetAtt":
                return self.get_att(arg, where)
            if fn == "Fn::Sub":
                return self.sub(arg, where)
            if fn == "Fn::Join":
                sep, items = arg
                return sep.join(text(v) for v in self.resolve(items, where))
            if fn == "Fn::Split":
                sep, s = arg
                return text(self.resolve(s, where)).split(sep)
            if fn == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name, where) else no, where)
            if fn.startswith("Fn::"):
                raise Fail(f"{where}: {fn} is not supported locally (only Ref, GetAtt, Sub, Join, Split, If)")
        out = {k: self.resolve(v, f"{where}.{k}") for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def ref(self, name, where):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameter(name, where)
        if name in self.tables:
            return self.tables[name]
        if name in self.queues:
            return self.queues[name]["url"]
        if name in self.buses:
            return self.buses[name]["name"]
        if name in self.buckets:
            return self.buckets[name]
        if name in self.secrets:
            raise Fail(f"{where}: !Ref {name} names a secret; pass it to a function as <NAME>_ARN "
                       "(locally it becomes <NAME>_FILE, see loyalty::secrets)")
        raise Fail(f"{where}: !Ref {name} has no local value (only parameters, tables, queues, buses and secrets do)")

    def get_att(self, arg, where):
        lid, attr = arg.split(".", 1) if isinstance(arg, str) else arg
        if lid in self.tables and attr == "Arn":
            return f"arn:aws:dynamodb:{REGION}:{DDB_ACCOUNT}:table/{self.tables[lid]}"
        if lid in self.tables and attr == "StreamArn":
            if not self.with_streams:
                return None  # left out locally (LOYALTY_LOCAL_STREAMS=0)
            if lid not in self.streams:
                raise Fail(f"{where}: table {lid} has no StreamSpecification, so no StreamArn")
            return self.streams[lid]
        if lid in self.buckets and attr == "Arn":
            return f"arn:aws:s3:::{self.buckets[lid]}"
        if lid in self.buses and attr in ("Arn", "Name"):
            return self.buses[lid]["arn" if attr == "Arn" else "name"]
        if lid in self.queues and attr in ("Arn", "QueueName", "QueueUrl"):
            q = self.queues[lid]
            return {"Arn": q["arn"], "QueueName": q["name"], "QueueUrl": q["url"]}[attr]
        raise Fail(f"{where}: !GetAtt {lid}.{attr} has no local value")

    def sub(self, arg, where):
        template, variables = (arg, {}) if isinstance(arg, str) else arg

        def one(match):
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} is the escape for a literal ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return text(self.resolve(variables[name], where))
            return text(self.get_att(name, where) if "." in name else self.ref(name, where))

        return re.sub(r"\$\{([^}]+)\}", one, template)

    def parameter(self, name, where):
        spec = self.parameters[name]
        override = os.environ.get(f"LOYALTY_PARAM_{name}")
        if override is not None:
            value = override
            allowed = spec.get("AllowedValues")
            if allowed and value not in [text(a) for a in allowed]:
                raise Fail(f"LOYALTY_PARAM_{name}={value!r} is not one of {allowed}")
            if len(value) < int(spec.get("MinLength", 0)):
                raise Fail(f"LOYALTY_PARAM_{name} is shorter than the parameter's MinLength {spec['MinLength']}")
            if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
                raise Fail(f"LOYALTY_PARAM_{name} does not match the parameter's AllowedPattern")
        elif name in LOCAL_PARAMETERS:
            value = LOCAL_PARAMETERS[name]
        elif "Default" in spec:
            value = text(spec["Default"])
        elif text(spec.get("NoEcho", False)) == "true":
            value = LOCAL_SECRET
        else:
            raise Fail(f"{where}: parameter {name} has no Default; set LOYALTY_PARAM_{name}")
        if spec.get("Type", "").startswith("CommaDelimitedList") or spec.get("Type", "").startswith("List<"):
            return [v.strip() for v in value.split(",")]
        return value

    def referenced(self, value):
        """Logical ids a (unresolved) value refers to, to order creation."""
        if isinstance(value, list):
            for v in value:
                yield from self.referenced(v)
        elif isinstance(value, dict):
            for fn, arg in value.items():
                if fn == "Ref" and isinstance(arg, str):
                    yield arg
                elif fn == "Fn::GetAtt":
                    yield (arg.split(".")[0] if isinstance(arg, str) else arg[0])
                elif fn == "Fn::Sub":
                    s = arg if isinstance(arg, str) else arg[0]
                    yield from (m.split(".")[0] for m in re.findall(r"\$\{([^}!][^}]*)\}", s))
                    if not isinstance(arg, str):
                        yield from self.referenced(arg[1])
                else:
                    yield from self.referenced(arg)

    # --- DynamoDB ----------------------------------------------------------------------
    def create_tables(self, ddb):
        for lid, props in self.of_type("AWS::DynamoDB::Table"):
            name = props["TableName"] if isinstance(props.get("TableName"), str) else lid
            self.tables[lid] = name
            p = {k: self.resolve(props[k], f"{lid}.{k}") for k in
                 ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "LocalSecondaryIndexes",
                  "StreamSpecification", "TimeToLiveSpecification") if k in props}
            # Local tables are always on-demand: capacity settings mean nothing here.
            want = {"TableName": name, "BillingMode": "PAY_PER_REQUEST",
                    "KeySchema": p["KeySchema"], "AttributeDefinitions": p["AttributeDefinitions"]}
            for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
                if p.get(key):
                    want[key] = [{k: ix[k] for k in ("IndexName", "KeySchema", "Projection")} for ix in p[key]]
            if p.get("StreamSpecification") and self.with_streams:
                want["StreamSpecification"] = {"StreamEnabled": True, **p["StreamSpecification"]}
            try:
                have = ddb.describe_table(TableName=name)["Table"]
                if shape(have) != shape(want):
                    raise Fail(f"table {name} exists with another key/index/stream schema than template.yaml; restart "
                               f"the stack to recreate it: scripts/stack down {self.profile} && scripts/stack up {self.profile}")
                print(f"bootstrap: table {name} exists")
            except ClientError as e:
                if e.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
                ddb.create_table(**want)
                ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
                have = ddb.describe_table(TableName=name)["Table"]
                print(f"bootstrap: table {name} created")
            if have.get("LatestStreamArn") and (have.get("StreamSpecification") or {}).get("StreamEnabled"):
                self.streams[lid] = have["LatestStreamArn"]
            ttl = p.get("TimeToLiveSpecification")
            if ttl and text(ttl.get("Enabled")) == "true":
                have = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
                if have.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                        "AttributeName": ttl["AttributeName"], "Enabled": True})
                elif have.get("AttributeName") != ttl["AttributeName"]:
                    raise Fail(f"table {name} has TTL on {have.get('AttributeName')}, template says "
                               f"{ttl['AttributeName']}; restart the stack: scripts/stack down {self.profile}")

    # --- SQS ---------------------------------------------------------------------------
    def create_queues(self, sqs):
        queues = dict(self.of_type("AWS::SQS::Queue"))
        # A queue's RedrivePolicy names its dead-letter queue's ARN: create referenced queues first.
        order, state = [], {}

        def visit(lid, path):
            if state.get(lid) == "done":
                return
            if state.get(lid) == "visiting":
                raise Fail("queues reference each other in a cycle: " + " -> ".join(path + [lid]))
            state[lid] = "visiting"
            for dep in self.referenced(queues[lid]):
                if dep in queues and dep != lid:
                    visit(dep, path + [lid])
            state[lid] = "done"
            order.append(lid)

        for lid in queues:
            visit(lid, [])
        for lid in order:
            props = queues[lid]
            fifo = text(props.get("FifoQueue", False)) == "true"
            name = props["QueueName"] if isinstance(props.get("QueueName"), str) else lid + (".fifo" if fifo else "")
            attrs = {k: text(self.resolve(props[k], f"{lid}.{k}")) for k in QUEUE_ATTRIBUTES if k in props}
            try:
                url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
                print(f"bootstrap: queue {name} ready")
            except ClientError as e:
                if "Exists" not in e.response["Error"]["Code"]:
                    raise
                # Exists with other attributes (template changed): bring it in line.
                url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
                sqs.set_queue_attributes(QueueUrl=url, Attributes={k: v for k, v in attrs.items() if k != "FifoQueue"})
                print(f"bootstrap: queue {name} updated")
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self.queues[lid] = {"name": name, "url": url, "arn": arn}

    # --- S3 --------------------------------------------------------------------------
    def create_buckets(self, s3):
        """Each bucket with its default encryption and its notifications to queues of the
        template (moto delivers them to its own SQS, as S3 does)."""
        for lid, props in self.of_type("AWS::S3::Bucket"):
            name = text(self.resolve(props.get("BucketName"), f"{lid}.BucketName")) if "BucketName" in props else lid.lower()
            try:
                s3.create_bucket(Bucket=name)
                print(f"bootstrap: bucket {name} created")
            except ClientError as e:
                if "BucketAlreadyOwnedByYou" not in e.response["Error"]["Code"]:
                    raise
                print(f"bootstrap: bucket {name} exists")
            self.buckets[lid] = name
            encryption = props.get("BucketEncryption")
            if encryption:
                # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
                rename = {"ServerSideEncryptionByDefault": "ApplyServerSideEncryptionByDefault"}
                s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
                    "Rules": [{rename.get(k, k): self.resolve(v, f"{lid}.BucketEncryption") for k, v in rule.items()}
                              for rule in encryption["ServerSideEncryptionConfiguration"]]})
            queues = []
            for n, q in enumerate((props.get("NotificationConfiguration") or {}).get("QueueConfigurations") or []):
                where = f"{lid}.NotificationConfiguration.QueueConfigurations[{n}]"
                arn = self.resolve(q["Queue"], where)
                if not any(x["arn"] == arn for x in self.queues.values()):
                    raise Fail(f"{where}: queue {arn} is not an AWS::SQS::Queue of this template")
                spec = {"Id": f"{lid}-{n}", "QueueArn": arn, "Events": [q["Event"]]}
                rules = ((q.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
                if rules:
                    spec["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
                queues.append(spec)
            if queues:
                s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={"QueueConfigurations": queues})
                print(f"bootstrap: bucket {name} notifies {len(queues)} queue(s)")

    # --- Secrets Manager ---------------------------------------------------------------
    def create_secrets(self, out):
        """A local stand-in file per secret: never the deployment's value, never a network call."""
        for lid, props in self.of_type("AWS::SecretsManager::Secret"):
            path = os.path.join(out, "secrets", lid)
            self.secrets[lid] = path
            if os.path.exists(path):
                continue  # keep the value across restarts (local coupon codes stay stable)
            if isinstance(props.get("SecretString"), str):
                value = props["SecretString"]
            else:
                gen = props.get("GenerateSecretString") or {}
                length = int(self.resolve(gen.get("PasswordLength", 32), f"{lid}.PasswordLength"))
                alphabet = string.ascii_letters + string.digits
                value = "".join(secrets.choice(alphabet) for _ in range(length))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(value)
            os.replace(path + ".tmp", path)
            print(f"bootstrap: secret {lid}: local stand-in {path}")

    def secret_variable(self, fid, name, value):
        """(name, value) of a function variable that names a secret, as the local stand-in."""
        if not isinstance(value, dict) or len(value) != 1:
            return None
        (fn, arg), = value.items()
        if fn == "Ref":
            lid = arg
        elif fn == "Fn::GetAtt":
            lid = arg.split(".")[0] if isinstance(arg, str) else arg[0]
        else:
            return None
        if lid not in self.secrets:
            return None
        if not name.endswith("_ARN"):
            raise Fail(f"{fid}: environment variable {name} names the secret {lid}; call it <NAME>_ARN "
                       "(loyalty::secrets reads <NAME>_ARN, and locally <NAME>_FILE)")
        return name[: -len("_ARN")] + "_FILE", self.secrets[lid]
    # --- EventBridge ---------------------------------------------------------------------
    def create_buses(self, events, sqs):
        for lid, props in self.of_type("AWS::Events::EventBus"):
            name = text(self.resolve(props.get("Name"), f"{lid}.Name"))
            try:
                arn = events.create_event_bus(Name=name)["EventBusArn"]
                print(f"bootstrap: event bus {name} created")
            except ClientError as e:
                if "Exists" not in e.response["Error"]["Code"]:
                    raise
                arn = events.describe_event_bus(Name=name)["Arn"]
                print(f"bootstrap: event bus {name} exists")
            self.buses[lid] = {"name": name, "arn": arn, "sink": self.local_sink(events, sqs, name)}

    @staticmethod
    def local_sink(events, sqs, bus):
        """Locally only: a queue that receives every event of the bus (scripts/events tail)."""
        queue = f"{bus}-local-sink"[:80]
        url = sqs.create_queue(QueueName=queue, Attributes={"MessageRetentionPeriod": "86400"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule = "local-sink"
        # Every event: the empty prefix matches any source.
        events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps({"source": [{"prefix": ""}]}),
                        Description="Local only: every event of the bus to the local sink queue")
        events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "local-sink", "Arn": arn}])
        print(f"bootstrap: local sink {queue} receives every event of {bus}")
        return {"name": queue, "url": url, "arn": arn, "rule": rule}

    # --- functions ---------------------------------------------------------------------
    def functions(self):
        env, functions = {}, {}
        for fid, props in self.of_type("AWS::Serverless::Function"):
            merged = {**((self.globals.get("Environment") or {}).get("Variables") or {}),
                      **((props.get("Environment") or {}).get("Variables") or {})}
            fenv = {}
            for k, v in merged.items():
                k, v = self.secret_variable(fid, k, v) or (k, text(self.resolve(v, f"{fid}: environment variable {k}")))
                fenv[k] = v
            for k, v in fenv.items():
                if k in env and env[k][0] != v:
                    raise Fail(f"environment variable {k} differs between {env[k][1]} and {fid}; "
                               "the local stack runs all functions with one environment")
                env.setdefault(k, (v, fid))
            metadata = self.resources[fid].get("Metadata") or {}
            timeout = props.get("Timeout", self.globals.get("Timeout", 3))
            memory = props.get("MemorySize", self.globals.get("MemorySize", 128))
            functions[fid] = {
                "binary": (metadata.get("BuildProperties") or {}).get("Binary"),
                "Timeout": int(self.resolve(timeout, f"{fid}.Timeout")),
                "MemorySize": int(self.resolve(memory, f"{fid}.MemorySize")),
                "env": fenv,
                "events": [self.event(fid, name, ev) for name, ev in (props.get("Events") or {}).items()],
            }
        if not functions:  # Globals still describe the environment
            gvars = (self.globals.get("Environment") or {}).get("Variables") or {}
            env = {k: (text(self.resolve(v, f"Globals: environment variable {k}")), "Globals") for k, v in gvars.items()}
        return {k: v for k, (v, _) in env.items()}, functions

    def event(self, fid, name, ev):
        kind, p = ev.get("Type"), ev.get("Properties") or {}
        where = f"{fid}.Events.{name}"
        out = {"Name": name, "Type": kind}
        if kind == "SQS":
            arn = self.resolve(p.get("Queue"), f"{where}.Queue")
            queue = next((q for q in self.queues.values() if q["arn"] == arn), None)
            if queue is None:
                raise Fail(f"{where}: queue {arn} is not an AWS::SQS::Queue of this template")
            out.update(QueueUrl=queue["url"], QueueArn=arn, BatchSize=p.get("BatchSize", 10),
                       MaximumBatchingWindowInSeconds=p.get("MaximumBatchingWindowInSeconds", 0),
                       FunctionResponseTypes=p.get("FunctionResponseTypes", []),
                       Enabled=text(p.get("Enabled", True)) == "true")
        elif kind == "DynamoDB":
            arn = self.resolve(p.get("Stream"), f"{where}.Stream")
            if arn is None and not self.with_streams:
                out.update(Enabled=False, Disabled="LOYALTY_LOCAL_STREAMS=0: the table has no stream locally")
                return out
            table = next((t for t, s in self.streams.items() if s == arn), None)
            if table is None:
                raise Fail(f"{where}: stream {arn} is not the stream of a table of this template")
            failure = self.resolve(((p.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"), where)
            on_failure = None
            if failure is not None:
                queue = next((q for q in self.queues.values() if q["arn"] == failure), None)
                if queue is None:
                    raise Fail(f"{where}: the OnFailure destination {failure} is not an AWS::SQS::Queue of this template")
                on_failure = {"QueueUrl": queue["url"], "QueueArn": queue["arn"]}
            out.update(StreamArn=arn, Table=self.tables[table], StartingPosition=p.get("StartingPosition", "LATEST"),
                       BatchSize=int(p.get("BatchSize", 100)),
                       MaximumBatchingWindowInSeconds=p.get("MaximumBatchingWindowInSeconds", 0),
                       FunctionResponseTypes=p.get("FunctionResponseTypes", []),
                       BisectBatchOnFunctionError=text(p.get("BisectBatchOnFunctionError", False)) == "true",
                       MaximumRetryAttempts=int(p.get("MaximumRetryAttempts", -1)),
                       MaximumRecordAgeInSeconds=int(p.get("MaximumRecordAgeInSeconds", -1)),
                       OnFailure=on_failure, Enabled=text(p.get("Enabled", True)) == "true")
        elif kind in ("Schedule", "ScheduleV2"):
            expr = p.get("Schedule") if kind == "Schedule" else p.get("ScheduleExpression")
            enabled = text(p.get("Enabled", True)) == "true" and p.get("State", "ENABLED") == "ENABLED"
            out.update(Schedule=self.resolve(expr, f"{where}.Schedule"),
                       ScheduleExpressionTimezone=self.resolve(p.get("ScheduleExpressionTimezone"), where),
                       Input=self.resolve(p.get("Input"), f"{where}.Input"), Enabled=enabled)
        elif kind in ("HttpApi", "Api"):
            out.update(Method=p.get("Method"), Path=p.get("Path"))
            if kind == "HttpApi":
                out.update(self.route_auth(p, where))
        return out

    def route_auth(self, p, where):
        """The authorizer of an HttpApi route: Authorizer AWS_IAM, NONE, or a JWT authorizer's
        name with its resolved Jwt {issuer, audience} (the route's Auth, else the API's default)."""
        api_ref = p.get("ApiId")
        api_id = api_ref.get("Ref") if isinstance(api_ref, dict) else None
        api = ((self.resources.get(api_id) or {}).get("Properties") or {}) if api_id else {}
        auth = api.get("Auth") or {}
        name = (p.get("Auth") or {}).get("Authorizer") or auth.get("DefaultAuthorizer") or "NONE"
        out = {"Authorizer": name}
        if name not in ("AWS_IAM", "NONE"):
            spec = (auth.get("Authorizers") or {}).get(name)
            if not spec or "JwtConfiguration" not in spec:
                raise Fail(f"{where}: authorizer {name} is not a JWT authorizer of {api_id}")
            jwt = spec["JwtConfiguration"]
            audience = self.resolve(jwt.get("audience"), f"{where}: audience")
            out["Jwt"] = {"issuer": self.resolve(jwt.get("issuer"), f"{where}: issuer"),
                          "audience": audience if isinstance(audience, list) else [audience],
                          "identitySource": spec.get("IdentitySource", "$request.header.Authorization")}
        return out


def local_principals():
    """kind -> {accessKey, secretKey, arn, userId}: the local IAM callers scripts/call signs as."""
    out = {}
    for kind, p in LOCAL_PRINCIPALS.items():
        out[kind] = {"accessKey": p["accessKey"], "secretKey": p["secretKey"],
                     "arn": f"arn:aws:sts::{PSEUDO['AWS::AccountId']}:assumed-role/{p['role']}/local",
                     "userId": f"AROALOCAL{p['role'].upper().replace('-', '')}:local"}
    return out


def shape(table):
    """What must match for an existing table to be the template's table."""
    keys = lambda ks: tuple((k["AttributeName"], k["KeyType"]) for k in ks)
    indexes = lambda key: sorted((ix["IndexName"], keys(ix["KeySchema"])) for ix in table.get(key) or [])
    stream = table.get("StreamSpecification") or {}
    view = stream.get("StreamViewType") if stream.get("StreamEnabled", True) else None
    return keys(table["KeySchema"]), indexes("GlobalSecondaryIndexes"), indexes("LocalSecondaryIndexes"), view


def write(path, content):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(content)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--template", required=True)
    ap.add_argument("--ddb-port", type=int, required=True)
    ap.add_argument("--sqs-port", type=int, required=True)
    ap.add_argument("--out", required=True, help="directory for env and env.json")
    ap.add_argument("--profile", default="dev")
    a = ap.parse_args()

    template, errors = decode(a.template)
    if errors or template is None:
        raise Fail(f"cannot parse {a.template}:\n" + "\n".join(f"  {e}" for e in errors))
    template = json.loads(json.dumps(template, default=str))  # plain dicts/lists

    base = {
        "AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{a.ddb_port}",
        # DynamoDB Local serves the streams API on the table endpoint.
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": f"http://127.0.0.1:{a.ddb_port}",
        "AWS_ENDPOINT_URL_SQS": f"http://127.0.0.1:{a.sqs_port}",
        # moto serves EventBridge next to SQS. The SDKs name a service's variable after its
        # service id ("EventBridge"), not its endpoint prefix ("events").
        "AWS_ENDPOINT_URL_EVENTBRIDGE": f"http://127.0.0.1:{a.sqs_port}",
        # and S3, with its notifications to its SQS queues.
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{a.sqs_port}",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        **CREDENTIALS,
        "AWS_EC2_METADATA_DISABLED": "true",  # never wait on an instance metadata probe locally
        "LOYALTY_STACK": a.profile,
    }
    session = boto3.session.Session(region_name=REGION, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    config = Config(connect_timeout=3, read_timeout=30, retries={"max_attempts": 3})
    ddb = session.client("dynamodb", endpoint_url=base["AWS_ENDPOINT_URL_DYNAMODB"], config=config)
    sqs = session.client("sqs", endpoint_url=base["AWS_ENDPOINT_URL_SQS"], config=config)
    events = session.client("events", endpoint_url=base["AWS_ENDPOINT_URL_EVENTBRIDGE"], config=config)
    s3 = session.client("s3", endpoint_url=base["AWS_ENDPOINT_URL_S3"], config=Config(
        connect_timeout=3, read_timeout=30, retries={"max_attempts": 3}, s3={"addressing_style": "path"}))

    local = Local(template, a.profile, streams=os.environ.get("LOYALTY_LOCAL_STREAMS", "1") != "0")
    local.create_tables(ddb)
    local.create_queues(sqs)
    local.create_buckets(s3)
    local.create_secrets(a.out)
    local.create_buses(events, sqs)
    fn_env, functions = local.functions()
    clash = sorted(set(fn_env) & set(base))
    if clash:
        raise Fail(f"template.yaml sets {', '.join(clash)}, which the local stack sets itself")
    env = {**base, **fn_env}

    os.makedirs(a.out, exist_ok=True)
    write(os.path.join(a.out, "env"), "# Generated by scripts/bootstrap.py from template.yaml. Do not edit.\n"
          + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
    write(os.path.join(a.out, "env.json"), json.dumps(
        {"profile": a.profile, "env": env, "tables": local.tables, "streams": local.streams, "queues": local.queues,
         "buses": local.buses, "buckets": local.buckets, "functions": functions, "principals": local_principals()}, indent=2) + "\n")
    print(f"bootstrap: wrote {a.out}/env and env.json ({len(functions)} functions)")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        sys.exit(f"bootstrap: error: {e}")
