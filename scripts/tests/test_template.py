"""Deployability of the real template.yaml: `sam validate --lint` (AWS SAM CLI from
.tools/sam-venv, installed by scripts/install-tools) and the samconfig defaults."""
import os
import subprocess
import sys
import tomllib

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.environ.get("LOYALTY_TOOLS_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(sys.executable)))
SAM = os.path.join(TOOLS, "sam-venv", "bin", "sam")


@pytest.mark.skipif(not os.path.exists(SAM), reason=f"{SAM} not installed (scripts/install-tools installs it)")
def test_sam_validate_lint_passes():
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    r = subprocess.run([SAM, "validate", "--lint", "--template-file", os.path.join(REPO, "template.yaml")],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "is a valid SAM Template" in r.stdout + r.stderr


def test_samconfig_defaults_and_no_secret():
    with open(os.path.join(REPO, "samconfig.toml"), "rb") as f:
        cfg = tomllib.load(f)
    assert cfg["default"]["global"]["parameters"]["stack_name"] == "loyalty"
    assert cfg["default"]["build"]["parameters"]["beta_features"] is True, "rust-cargolambda is a SAM beta feature"
    deploy = cfg["default"]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["confirm_changeset"] is True
    # The coupon code key and the contact key are NoEcho parameters without a default: a
    # deployment supplies them (the guided deploy prompts for them); never committed.
    assert "CouponCodeSecret" not in deploy.get("parameter_overrides", "")
    assert "ContactKeySecret" not in deploy.get("parameter_overrides", "")
