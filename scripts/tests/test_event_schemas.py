"""The event schemas (events/schemas/<DetailType>.json) checked with a full JSON Schema
2020-12 implementation: each is a valid schema, its examples are valid against it, and the
README's Events table lists exactly these detail types. (The Rust integration tests validate
every event the publisher emits against the same files.)"""
import json
import os
import re

import jsonschema
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIR = os.path.join(REPO, "events", "schemas")
NAMES = sorted(f[:-5] for f in os.listdir(DIR) if f.endswith(".json"))


def load(name):
    with open(os.path.join(DIR, name + ".json")) as f:
        return json.load(f)


@pytest.mark.parametrize("name", NAMES)
def test_each_schema_is_valid_and_its_examples_pass(name):
    s = load(name)
    jsonschema.Draft202012Validator.check_schema(s)
    assert s["$id"] == f"urn:loyalty:events:{name}:1"
    assert s["additionalProperties"] is False, "closed: an undocumented field fails the tests"
    assert {"eventId", "version", "at", "sequenceNumber"} <= set(s["required"])
    v = jsonschema.Draft202012Validator(s, format_checker=jsonschema.FormatChecker())
    assert s["examples"], "an example per schema"
    for ex in s["examples"]:
        v.validate(ex)
    # No personal data: the schemas themselves never allow such a field.
    assert not {"email", "phone", "name", "birthday"} & set(s["properties"])


def test_the_readme_table_lists_every_event():
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    section = readme.split("\n## Events", 1)[1].split("\n## ", 1)[0]
    listed = sorted(set(re.findall(r"^\| `(\w+)` \|", section, re.M)))
    assert listed == NAMES
