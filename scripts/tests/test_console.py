"""The operator console in a real browser: Debian's chromium, headless, driven by Playwright,
against `scripts/dev` (its own e2e-profile stack on free ports, devstack.py) and the real
functions. The console signs every call as the local operator stand-in, as it would sign with
Cognito credentials on AWS.

What a person would check, each step through the page only, then against the API:
- a campaign created through the form, after the API's field error for a blank name was shown
  next to that field; run now; the progress bar reaches drained with counts that add up;
- a member found by email (the search goes in a POST body), points adjusted with a reason, the
  ledger entry shown, and the balance what the API says;
- the dashboard's numbers equal GET /reports/kpis for the same range;
- no member contact in any URL the browser requested or in its console.

Screenshots of every page go to screenshots/console/ (git-ignored), with the page weight and
first paint of the dashboard (screenshots/console/timing.json; BENCHMARKS.md). This stack is
not test_e2e.py's: that one counts on a fresh stack for its member day, and these tests add
members to theirs. LOYALTY_SKIP_E2E=1 skips them, as it skips test_e2e.py.
"""
import json
import os
import shutil
import time

import pytest

import devstack
import gateway
import local_events
from devstack import tail

pytestmark = pytest.mark.e2e

REPO = devstack.REPO
SHOTS = os.path.join(REPO, "screenshots", "console")
DRAIN_TIMEOUT = 180
MEMBERS = 30
WELCOME_POINTS = 100  # shared/rules/default.json's signup.welcomePoints


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    with devstack.running(tmp_path_factory) as d:
        yield d


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: scripts/install-tools installs it (apt-get)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: the tests run as root, where chromium's sandbox cannot start.
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def people(dev):
    """Fresh members (regular tier), each joined with a token that verified their email."""
    import urllib.request

    env = local_events.load_env(dev["api"].env_json)
    tag = f"console-{int(time.time())}"
    out = []
    for i in range(MEMBERS):
        member, email = f"{tag}-m{i}", f"{tag}-m{i}@example.com"
        token = gateway.mint(env, member, email=email, email_verified=True)
        body = json.dumps({"name": f"浏览器测试 {i}", "marketingConsent": True}).encode()
        req = urllib.request.Request(f"{dev['api'].base}/members", data=body, method="POST",
                                     headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 201
        out.append({"member": member, "email": email})
    return out


class Watch:
    """Every URL the page requested and every console message: no contact may appear in them."""

    def __init__(self, page):
        self.urls, self.console = [], []
        page.on("request", lambda r: self.urls.append(r.url))
        page.on("console", lambda m: self.console.append(m.text))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    def assert_clean(self, secrets):
        for s in secrets:
            assert not [u for u in self.urls if s.lower() in u.lower()], f"{s} in a URL"
            assert not [c for c in self.console if s.lower() in c.lower()], f"{s} in the console"
        assert not [c for c in self.console if c.startswith("pageerror")], self.console


@pytest.fixture()
def page(dev, browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    p = ctx.new_page()
    p.set_default_timeout(30_000)
    p.watch = Watch(p)
    yield p
    ctx.close()


def shot(page, name):
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def console_url(dev, route=""):
    return f"http://127.0.0.1:{dev['port']}/console/{route}"


def expected_numbers(r):
    """What the dashboard must show, read from the report as the API answered it."""
    tiers = r["totals"]["tiersAtEnd"]
    month = r["months"][-1]
    return {
        "members": sum(tiers.values()), "joined": r["totals"]["joined"], "active": month["activeMembers"],
        "purchases": r["totals"]["purchases"], "gmv": r["totals"]["gmv"], "netGmv": r["totals"]["netGmv"],
        "repurchase": month["repurchaseRate"], "liability": r["totals"]["liabilityAtEnd"]["points"],
        "liabilityValue": r["totals"]["liabilityAtEnd"]["value"], "couponsIssued": r["totals"]["coupons"]["issued"],
        "couponsRedeemed": r["totals"]["coupons"]["redeemed"], "redemption": r["totals"]["coupons"]["redemptionRate"],
    }


def shown_numbers(page):
    out = {}
    for el in page.locator("#kpis .stat").all():
        raw = el.get_attribute("data-value")
        out[el.get_attribute("data-kpi")] = None if raw == "null" else json.loads(raw)
    return out


def test_a_campaign_is_created_through_the_form_run_and_drained_with_counts_that_add_up(dev, page, people):
    api = dev["api"]
    page.goto(console_url(dev, "#/campaigns"))
    page.wait_for_selector("#campaign-form")
    # A blank name: the API's 422 invalid_name appears next to the name field, nothing is created.
    page.fill("#name", "   ")
    page.fill("#couponTitle", "浏览器测试：满10减1")
    page.fill("#value", "1")
    page.click("#create-campaign")
    page.wait_for_function("document.querySelector('#err-name').textContent.length > 0")
    assert "name must be 1..100 characters" in page.text_content("#err-name")
    assert page.get_attribute("#name", "aria-invalid") == "true"
    shot(page, "campaigns-field-error")

    name = f"浏览器测试活动 {int(time.time())}"
    page.fill("#name", name)
    page.click("#create-campaign")
    page.wait_for_function("document.querySelector('#campaign-created').textContent.length > 0")
    campaign_id = page.text_content("#campaign-created").split(":")[-1].strip()
    assert page.text_content("#err-name") == ""
    listed = api.expect({200}, "GET", "/campaigns", iam="operator")["campaigns"]
    assert [c for c in listed if c["campaignId"] == campaign_id and c["name"] == name], listed

    page.click("#run-now")
    try:
        page.wait_for_selector(".run[data-state=drained]", timeout=DRAIN_TIMEOUT * 1000)
    except Exception:
        shot(page, "campaigns-not-drained")
        pytest.fail(f"the run did not drain in {DRAIN_TIMEOUT}s\n{tail(dev['log'])}")
    run = page.locator(".run[data-state=drained]")
    counts = {k: int(run.get_attribute(f"data-{k}")) for k in ("targeted", "issued", "skipped", "failed")}
    assert counts["targeted"] == counts["issued"] + counts["skipped"] + counts["failed"], counts
    # Every member of this stack is regular (the form's default segment) and joined above.
    assert counts["targeted"] >= MEMBERS and counts["failed"] == 0, counts
    api_run = api.expect({200}, "GET", f"/campaigns/{campaign_id}", iam="operator")["runs"][0]
    assert api_run["state"] == "drained"
    assert {k: api_run[k] for k in counts} == counts, (api_run, counts)
    page.wait_for_selector(f"#campaign-list tr[data-campaign-id='{campaign_id}'] .state.drained")
    shot(page, "campaigns-drained")
    page.watch.assert_clean([p["email"] for p in people])


def test_an_experiment_runs_from_the_form_and_its_arms_show_with_their_uplift(dev, page, people):
    api = dev["api"]
    page.goto(console_url(dev, "#/campaigns"))
    page.wait_for_selector("#campaign-form")
    page.fill("#name", f"浏览器测试实验 {int(time.time())}")
    page.fill("#couponTitle", "实验：满10减2")
    page.fill("#value", "2")
    page.select_option("#variants", "ab")
    page.fill("#holdout", "20")
    page.click("#create-campaign")
    page.wait_for_function("document.querySelector('#campaign-created').textContent.length > 0")
    campaign_id = page.text_content("#campaign-created").split(":")[-1].strip()
    page.click("#run-now")
    page.wait_for_selector(".run[data-state=drained]", timeout=DRAIN_TIMEOUT * 1000)
    # The report counts the run from the table's stream: the page asks again until every member
    # the run gave a coupon or held out is in an arm.
    page.wait_for_selector("#experiment[data-complete=true] table.experiment tbody tr", timeout=90_000)
    run = page.locator(".run[data-state=drained]")
    targeted = int(run.get_attribute("data-targeted"))
    cells = [int(td.get_attribute("data-members")) for td in page.locator("#experiment td[data-members]").all()]
    report = api.expect({200}, "GET", "/reports/kpis", iam="operator")
    runs = [c for c in report["campaigns"] if c["grant"].startswith(f"campaign:{campaign_id}:")]
    assert len(runs) == 1 and runs[0]["arms"], runs
    # Two variants and the holdout, each with the members the report counts, all of the segment.
    assert cells == [a["members"] for a in runs[0]["arms"]] and len(cells) == 3, (cells, runs)
    assert sum(cells) == targeted, (cells, targeted)
    assert page.locator("#experiment table.experiment tbody tr").last.locator("td").first.text_content() == "对照组"
    shot(page, "campaigns-experiment")


def test_support_finds_a_member_by_email_and_adjusts_points_with_a_reason(dev, page, people):
    api = dev["api"]
    who = people[0]
    page.goto(console_url(dev, "#/members"))
    page.select_option("#search-by", "email")
    page.fill("#search-value", who["email"])
    page.click("#search-submit")
    page.wait_for_selector(f"#member[data-member-id='{who['member']}']")
    before = int(page.get_attribute("[data-points=points]", "data-value"))
    assert before == api.expect({200}, "GET", f"/members/{who['member']}", sub=who["member"])["points"]

    reason = "浏览器测试：包裹延误补偿"
    page.fill("#adjust-points", "123")
    page.fill("#adjust-reason", reason)
    page.click("#adjust-submit")
    page.wait_for_selector("#ledger tr[data-kind=adjustment]")
    row = page.locator("#ledger tr[data-kind=adjustment]").first
    assert reason in row.text_content()
    assert row.get_attribute("data-points") == "123"
    page.wait_for_selector(f"[data-points=points][data-value='{before + 123}']")
    assert "积分已调整" in page.text_content("#member-notice")
    # The API agrees, and its ledger has exactly one adjustment with that reason.
    profile = api.expect({200}, "GET", f"/members/{who['member']}", sub=who["member"])
    assert profile["points"] == before + 123
    ledger = api.expect({200}, "GET", f"/members/{who['member']}/ledger", sub=who["member"])["entries"]
    assert [e["reason"] for e in ledger if e["kind"] == "adjustment"] == [reason]
    shot(page, "member-support")

    # A reason is mandatory: the API's 422 shows, and the balance does not move.
    page.fill("#adjust-points", "5")
    page.fill("#adjust-reason", " ")
    page.click("#adjust-submit")
    page.wait_for_selector("#adjust-message.form-error")
    assert "reason_required" in page.text_content("#adjust-message")
    assert api.expect({200}, "GET", f"/members/{who['member']}", sub=who["member"])["points"] == before + 123
    page.watch.assert_clean([p["email"] for p in people])


def test_the_dashboard_shows_the_report_apis_numbers(dev, page, people):
    api = dev["api"]
    page.goto(console_url(dev))
    page.wait_for_selector("#kpis[data-ready=true]")
    frm, to = page.get_attribute("#kpis", "data-from"), page.get_attribute("#kpis", "data-to")
    report = api.expect({200}, "GET", f"/reports/kpis?from={frm}&to={to}", iam="operator")
    shown = shown_numbers(page)
    assert shown == expected_numbers(report), (shown, expected_numbers(report))
    assert shown["joined"] >= MEMBERS and shown["members"] >= MEMBERS, shown
    assert page.locator(".chart canvas").count() == 6
    timing = page.evaluate("""() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const res = performance.getEntriesByType('resource');
      const paint = Object.fromEntries(performance.getEntriesByType('paint').map(p => [p.name, p.startTime]));
      return { firstPaintMs: paint['first-paint'], firstContentfulPaintMs: paint['first-contentful-paint'],
               transferBytes: nav.transferSize + res.reduce((s, r) => s + r.transferSize, 0),
               decodedBytes: nav.decodedBodySize + res.reduce((s, r) => s + r.decodedBodySize, 0),
               resources: res.map(r => ({ name: new URL(r.name).pathname, bytes: r.transferSize })) };
    }""")
    os.makedirs(SHOTS, exist_ok=True)
    with open(os.path.join(SHOTS, "timing.json"), "w") as f:
        json.dump(timing, f, indent=2)
    shot(page, "dashboard")

    # English on demand; the numbers stay the API's.
    page.click("#lang")
    page.wait_for_selector("text=Dashboard")
    page.wait_for_selector("#kpis[data-ready=true]")
    assert shown_numbers(page) == expected_numbers(report)
    shot(page, "dashboard-en")
    page.click("#lang")
    page.wait_for_selector("text=数据概览")
    page.watch.assert_clean([p["email"] for p in people])


def test_the_rewards_catalog_creates_edits_and_deactivates(dev, page):
    api = dev["api"]
    page.goto(console_url(dev, "#/rewards"))
    page.wait_for_selector("#reward-form")
    name = f"浏览器测试礼品 {int(time.time())}"
    page.fill("#reward-name", name)
    page.select_option("#reward-kind", "gift")
    page.fill("#reward-price", "500")
    page.fill("#reward-stock", "10")
    page.click("#reward-form button[type=submit]")
    row = page.locator("#reward-list tr", has_text=name)
    row.wait_for()
    reward_id = row.get_attribute("data-reward-id")
    row.locator("input").nth(0).fill("450")
    row.locator("button").nth(0).click()
    deadline = time.monotonic() + 20
    while True:
        rewards = {r["rewardId"]: r for r in api.expect({200}, "GET", "/rewards", iam="operator")["rewards"]}
        if rewards[reward_id]["price"] == 450 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert rewards[reward_id]["price"] == 450 and rewards[reward_id]["stock"] == 10, rewards[reward_id]
    page.locator(f"#reward-list tr[data-reward-id='{reward_id}'] button").nth(1).click()
    page.wait_for_selector(f"#reward-list tr[data-reward-id='{reward_id}'] button[disabled]")
    rewards = {r["rewardId"]: r for r in api.expect({200}, "GET", "/rewards", iam="operator")["rewards"]}
    assert rewards[reward_id]["active"] is False
    shot(page, "rewards")


def test_support_ships_one_gift_claim_and_cancels_another_from_the_member_page(dev, page, people):
    api = dev["api"]
    who = people[1]
    reward = api.expect({201}, "POST", "/rewards", iam="operator", key=f"console-gift-{int(time.time())}",
                        body={"name": "浏览器测试保温杯", "kind": "gift", "price": 30, "stock": 5})
    claims = [api.expect({201}, "POST", f"/members/{who['member']}/reward-claims", sub=who["member"],
                         key=f"console-claim-{i}-{int(time.time())}",
                         body={"rewardId": reward["rewardId"], "price": 30})["claimId"] for i in range(2)]
    points = api.expect({200}, "GET", f"/members/{who['member']}", sub=who["member"])["points"]

    page.goto(console_url(dev, "#/members"))
    page.select_option("#search-by", "memberId")
    page.fill("#search-value", who["member"])
    page.click("#search-submit")
    for c in claims:
        page.wait_for_selector(f"#claims tr[data-claim-id='{c}'][data-status=pending]")
    page.locator(f"#claims tr[data-claim-id='{claims[0]}'] button").nth(0).click()  # shipped
    page.wait_for_selector(f"#claims tr[data-claim-id='{claims[0]}'][data-status=shipped]")
    page.locator(f"#claims tr[data-claim-id='{claims[1]}'] button").nth(1).click()  # cancelled
    page.wait_for_selector(f"#claims tr[data-claim-id='{claims[1]}'][data-status=cancelled]")
    shot(page, "member-gift-claims")

    listed = {c["claimId"]: c for c in api.expect({200}, "GET", f"/members/{who['member']}/reward-claims", sub=who["member"])["claims"]}
    assert listed[claims[0]]["status"] == "shipped" and listed[claims[1]]["status"] == "cancelled"
    assert listed[claims[1]]["pointsReturned"] == 30
    assert api.expect({200}, "GET", f"/members/{who['member']}", sub=who["member"])["points"] == points + 30
    page.watch.assert_clean([p["email"] for p in people])
