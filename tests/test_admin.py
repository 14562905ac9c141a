"""The admin API (projects, project keys, spend limits and alerts) against a live server, with
the official client validating strictly; and limits and alerts enforced on gateway traffic."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import openai
import pytest
from aiosmtpd.controller import Controller

from .conftest import Server, event, free_port, proxy_key, run_cli, start_server, stop_server

PROJECT_FIELDS = {"object", "id", "name", "created_at", "archived_at", "status"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: str) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("admin"), "--lookback-days", "0", "--upstream", upstream)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def admin(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        admin_api_key=server.admin_key, api_key="unused", base_url=server.api,
        _strict_response_validation=True, max_retries=0,
    ) as c:  # fmt: skip
        yield c


def test_projects_are_created_read_renamed_listed_and_archived(admin: openai.OpenAI) -> None:
    projects = admin.admin.organization.projects
    made = [projects.create(name=f"Team {n}") for n in range(3)]
    assert [p.name for p in made] == ["Team 0", "Team 1", "Team 2"] and all(
        p.status == "active" for p in made
    )
    assert all(p.id.startswith("proj_") for p in made)
    assert projects.retrieve(made[0].id) == made[0]
    renamed = projects.update(made[1].id, name="Platform")
    assert (renamed.id, renamed.name) == (made[1].id, "Platform")
    walked = [p.id for p in projects.list(limit=1)]  # the client walks the pages by after=
    assert walked[-3:] == [p.id for p in made]
    archived = projects.archive(made[2].id)
    assert archived.status == "archived" and archived.archived_at is not None
    assert made[2].id not in [p.id for p in projects.list()]
    assert made[2].id in [p.id for p in projects.list(include_archived=True)]


def test_an_archived_projects_proxy_keys_stop_at_once(server: Server, admin: openai.OpenAI) -> None:
    project = admin.admin.organization.projects.create(name="Soon archived")
    secret, _ = proxy_key(server, project.id)
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"model": "before-archive", "messages": [{"role": "user", "content": "x"}]}
    assert httpx.post(server.api + "/chat/completions", json=body, headers=headers).status_code == 200
    admin.admin.organization.projects.archive(project.id)
    refused = httpx.post(server.api + "/chat/completions", json=body, headers=headers)
    assert refused.status_code == 401 and "archived" in refused.json()["error"]["message"]
    (listed,) = admin.admin.organization.projects.api_keys.list(project.id)
    assert listed.owner_project_access == "inactive"


def test_a_project_seen_only_in_usage_is_listed_without_a_name(server: Server, admin: openai.OpenAI) -> None:
    server.ingest_ok([event("completions", server.window(), project_id="proj_from_usage", input_tokens=1)])
    seen = admin.admin.organization.projects.retrieve("proj_from_usage")
    assert (seen.id, seen.name, seen.status) == ("proj_from_usage", None, "active")
    named = admin.admin.organization.projects.update("proj_from_usage", name="Named later")
    assert named.name == "Named later"


def test_projects_seen_in_a_batch_held_as_columns_are_listed(server: Server, admin: openai.OpenAI) -> None:
    # enough events of one kind for the server to keep them in columns (FEW_EVENTS)
    batch = [
        event("completions", server.window(), project_id=f"proj_column_{n % 2}", input_tokens=1)
        for n in range(100)
    ]
    server.ingest_ok(batch)
    for name in ("proj_column_0", "proj_column_1"):
        assert admin.admin.organization.projects.retrieve(name).id == name


def test_projects_of_usage_stored_before_the_server_started_are_listed(tmp_path: Path) -> None:
    demo = run_cli("demo", "--days", "1", "--db", str(tmp_path / "usage.duckdb"))
    assert demo.returncode == 0, demo.stderr
    running = start_server(tmp_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            listed = running.page("/organization/projects", {"limit": 100})
            if listed["data"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert listed["data"] and all(set(p) == PROJECT_FIELDS for p in listed["data"])
        assert all(p["name"] is None for p in listed["data"])
    finally:
        stop_server(running)


def test_an_unknown_project_is_404_in_openais_envelope(admin: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        admin.admin.organization.projects.retrieve("proj_nobody")
    assert "proj_nobody" in str(missing.value)


def test_a_projects_proxy_keys_are_listed_read_and_deleted(server: Server, admin: openai.OpenAI) -> None:
    project = admin.admin.organization.projects.create(name="Keys")
    secret, key_id = proxy_key(server, project.id, "alice")
    keys = admin.admin.organization.projects.api_keys
    (listed,) = keys.list(project.id)
    assert (listed.id, listed.owner.type, listed.owner_project_access) == (key_id, "user", "active")
    assert listed.owner.user is not None and listed.owner.user.id == "alice"
    assert listed.redacted_value.startswith("sk-proj-") and secret not in listed.model_dump_json()
    assert keys.retrieve(key_id, project_id=project.id) == listed
    deleted = keys.delete(key_id, project_id=project.id)
    assert (deleted.id, deleted.deleted) == (key_id, True)
    assert list(keys.list(project.id)) == []
    call = httpx.post(
        server.api + "/chat/completions", json={"model": "m"}, headers={"Authorization": f"Bearer {secret}"}
    )
    assert call.status_code == 401


@pytest.mark.parametrize("scope", ["organization", "project"])
def test_spend_limits_are_set_read_replaced_and_deleted(admin: openai.OpenAI, scope: str) -> None:
    org = admin.admin.organization
    if scope == "organization":
        limits: Any = org.spend_limit
        args: dict[str, Any] = {}
    else:
        limits = org.projects.spend_limit
        args = {"project_id": org.projects.create(name="Limited").id}
    with pytest.raises(openai.NotFoundError):
        limits.retrieve(**args)
    made = limits.update(**args, currency="USD", interval="month", threshold_amount=12_345)
    assert (made.object, made.threshold_amount, made.enforcement.status) == (
        f"{scope}.spend_limit",
        12_345,
        "inactive",
    )
    assert limits.retrieve(**args) == made
    assert limits.update(**args, currency="USD", interval="month", threshold_amount=99).threshold_amount == 99
    deleted = limits.delete(**args)
    assert (deleted.object, deleted.deleted) == (f"{scope}.spend_limit.deleted", True)
    with pytest.raises(openai.NotFoundError):
        limits.retrieve(**args)
    if scope == "organization":
        return
    with pytest.raises(openai.NotFoundError):  # the limit of a project that does not exist
        limits.retrieve(project_id="proj_nobody")


@pytest.mark.parametrize("scope", ["organization", "project"])
def test_spend_alerts_are_created_listed_read_updated_and_deleted(admin: openai.OpenAI, scope: str) -> None:
    org = admin.admin.organization
    alerts: Any = org.spend_alerts if scope == "organization" else org.projects.spend_alerts
    args: dict[str, Any] = (
        {} if scope == "organization" else {"project_id": org.projects.create(name="Alerted").id}
    )
    channel: Any = {"type": "email", "recipients": ["ops@example.com"], "subject_prefix": "[usage]"}
    made = [
        alerts.create(
            **args, currency="USD", interval="month", notification_channel=channel, threshold_amount=cents
        )
        for cents in (1_000, 5_000)
    ]
    assert made[0].object == f"{scope}.spend_alert" and made[0].notification_channel.recipients == [
        "ops@example.com"
    ]
    listed = [a.id for a in alerts.list(**args, limit=1)]
    assert listed[-2:] == [a.id for a in made]
    assert alerts.retrieve(made[0].id, **args) == made[0]
    changed = alerts.update(
        made[0].id, **args, currency="USD", interval="month",
        notification_channel={"type": "email", "recipients": ["a@example.com", "b@example.com"]},
        threshold_amount=2_000,
    )  # fmt: skip
    assert (changed.id, changed.threshold_amount, changed.notification_channel.subject_prefix) == (
        made[0].id,
        2_000,
        None,
    )
    deleted = alerts.delete(made[0].id, **args)
    assert (deleted.id, deleted.deleted, deleted.object) == (made[0].id, True, f"{scope}.spend_alert.deleted")
    assert made[0].id not in [a.id for a in alerts.list(**args)]
    with pytest.raises(openai.NotFoundError):
        alerts.retrieve(made[0].id, **args)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"currency": "USD", "interval": "month", "threshold_amount": -1}, "threshold_amount"),
        ({"currency": "USD", "interval": "month", "threshold_amount": 1.5}, "threshold_amount"),
        ({"currency": "USD", "interval": "month", "threshold_amount": True}, "threshold_amount"),
        ({"currency": "USD", "interval": "month", "threshold_amount": 10**13}, "threshold_amount"),
        ({"currency": "EUR", "interval": "month", "threshold_amount": 1}, "currency"),
        ({"currency": "USD", "interval": "week", "threshold_amount": 1}, "interval"),
        ({"currency": "USD", "interval": "month"}, "threshold_amount"),
        ({"currency": "USD", "interval": "month", "threshold_amount": 1, "hard": True}, "hard"),
    ],
)
def test_a_wrong_limit_is_refused_with_the_parameter_named(
    server: Server, body: dict[str, Any], param: str
) -> None:
    with server.client() as c:
        response = c.post("/organization/spend_limit", json=body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text


@pytest.mark.parametrize(
    "channel",
    [
        None,
        {"type": "sms", "recipients": ["a@example.com"]},
        {"type": "email", "recipients": []},
        {"type": "email", "recipients": ["not-an-address"]},
        {"type": "email", "recipients": ["a@example.com"] * 51},
        {"type": "email", "recipients": ["a@example.com"], "subject_prefix": "x\nBcc: victim@example.com"},
    ],
)
def test_a_wrong_notification_channel_is_refused(server: Server, channel: Any) -> None:
    body = {"currency": "USD", "interval": "month", "threshold_amount": 1, "notification_channel": channel}
    with server.client() as c:
        response = c.post("/organization/spend_alerts", json=body)
    assert response.status_code == 400 and "notification_channel" in response.json()["error"]["param"]


def test_only_admin_keys_manage_and_bodies_must_be_json_objects(server: Server) -> None:
    ingest = server.cli("keys", "create", "--scope", "ingest").stdout.strip()
    body = {"currency": "USD", "interval": "month", "threshold_amount": 1}
    with server.client(ingest) as c:
        assert c.post("/organization/spend_limit", json=body).status_code == 403
        assert c.get("/organization/projects").status_code == 403
    with server.client() as c:
        assert c.post("/organization/projects", content=b"[1]").status_code == 400
        assert c.post("/organization/projects", content=b"{not json").status_code == 400
        assert c.post("/organization/projects", json={"name": ""}).json()["error"]["param"] == "name"
        assert c.post("/organization/projects", json={"name": "x", "residency": "eu"}).status_code == 400
        assert c.get("/organization/projects", params={"limit": 0}).json()["error"]["param"] == "limit"
        assert (
            c.get("/organization/projects", params={"after": "proj_nobody"}).json()["error"]["param"]
            == "after"
        )


# Traffic through the gateway that crosses an alert, then a hard limit.

PRICES = """
source = "test prices"

[[price]]
model = "dear-model"
item = "input"
usd_per_million = 1000000
[[price]]
model = "dear-model"
item = "output"
usd_per_million = 1000000
"""


class Inbox:
    """An SMTP server on a free port that keeps what it is sent."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content.decode())
        return "250 OK"


class Hooks(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[bytes, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        Hooks.received.append((body, self.headers.get("X-Openusage-Signature", "")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    box.controller.start()
    yield box
    box.controller.stop()


@pytest.fixture
def hooks() -> Iterator[str]:
    Hooks.received = []
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    receiver.shutdown()
    receiver.server_close()


def wait_for(check: Any, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_traffic_crosses_an_alert_then_a_limit_which_blocks_until_raised(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    upstream: str,
    inbox: Inbox,
    hooks: str,
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES)
    secret_word = "whsec-test-" + "s" * 20

    def start() -> Server:
        return start_server(
            tmp_path, "--upstream", upstream, "--prices", str(prices), "--spend-check-seconds", "0.5",
            "--smtp-url", f"smtp://127.0.0.1:{inbox.port}", "--alert-webhook", hooks,
            env={"OPENUSAGE_ALERT_WEBHOOK_SECRET": secret_word},
        )  # fmt: skip

    server = start()
    request.addfinalizer(lambda: stop_server(server))  # a failure below must not leave it running
    with openai.OpenAI(
        admin_api_key=server.admin_key, api_key="unused", base_url=server.api, max_retries=0
    ) as admin:
        project = admin.admin.organization.projects.create(name="Spender")
        secret, _ = proxy_key(server, project.id)
        channel: Any = {"type": "email", "recipients": ["ops@example.com"], "subject_prefix": "[usage]"}
        admin.admin.organization.projects.spend_alerts.create(
            project_id=project.id,
            currency="USD",
            interval="month",
            threshold_amount=1_000,
            notification_channel=channel,
        )
        limits = admin.admin.organization.projects.spend_limit
        limits.update(project_id=project.id, currency="USD", interval="month", threshold_amount=1_500)
        model = openai.OpenAI(api_key=secret, base_url=server.api, max_retries=0)
        request.addfinalizer(model.close)

        def call() -> None:  # 7 input and 5 output tokens at $1 a token: $12
            model.chat.completions.create(
                model="dear-model", messages=[{"role": "user", "content": "one two three four"}]
            )

        call()
        wait_for(lambda: inbox.messages, "no alert email")
        assert "Subject: [usage] Spend alert" in inbox.messages[0] and "ops@example.com" in inbox.messages[0]
        wait_for(lambda: Hooks.received, "no webhook")
        body, signed = Hooks.received[0]
        assert signed == "sha256=" + hmac.new(secret_word.encode(), body, hashlib.sha256).hexdigest()
        fired = json.loads(body)
        assert (fired["project_id"], fired["threshold_amount"], fired["spent_amount"]) == (
            project.id,
            1_000,
            "12",
        )
        assert limits.retrieve(project.id).enforcement.status == "inactive"

        call()  # $24: past the $15 limit
        wait_for(
            lambda: limits.retrieve(project.id).enforcement.status == "enforcing",
            "the limit does not enforce",
        )
        with pytest.raises(openai.RateLimitError) as blocked:
            call()
        error = blocked.value.body
        assert isinstance(error, dict) and error["code"] == "insufficient_quota"
        assert "$15.00" in error["message"] and project.id in error["message"]

        limits.update(project_id=project.id, currency="USD", interval="month", threshold_amount=100_000)
        call()  # lifted at once
        limits.update(project_id=project.id, currency="USD", interval="month", threshold_amount=1_500)
        with pytest.raises(openai.RateLimitError):
            call()
        limits.delete(project.id)
        call()
        org_limit = admin.admin.organization.spend_limit
        org_limit.update(currency="USD", interval="month", threshold_amount=100)
        with pytest.raises(openai.RateLimitError) as organization:
            call()
        assert "organization" in str(organization.value)
        org_limit.delete()
    stop_server(server)
    assert len(inbox.messages) == 1 and len(Hooks.received) == 1

    restarted = start()  # the alert fired this month already: no second email
    try:
        time.sleep(2)  # four spend checks
        assert len(inbox.messages) == 1 and len(Hooks.received) == 1
    finally:
        stop_server(restarted)


def test_a_limit_enforces_from_the_cent_it_is_reached_and_an_alert_fires_once_a_month(tmp_path: Path) -> None:
    from decimal import Decimal

    from openusage.admin.registry import Registry, SpendAlert
    from openusage.admin.spend import Spend, SpendWatch
    from openusage.server.errors import ApiError

    registry = Registry(tmp_path / "control.sqlite")
    registry.set_limit("proj_a", 1_000)
    registry.save_alert(SpendAlert("alert_1", "proj_a", 500, ("a@example.com",), None, 0))
    spent = {"proj_a": Decimal("9.99")}
    month = ["2026-11"]
    fired: list[tuple[str, Decimal, str]] = []
    watch = SpendWatch(
        registry,
        lambda now: Spend(month[0], sum(spent.values(), Decimal(0)), dict(spent)),
        lambda alert, amount, when: fired.append((alert.id, amount, when)),
    )
    watch.refresh()
    assert not watch.enforcing("proj_a") and fired == [("alert_1", Decimal("9.99"), "2026-11")]
    watch.admit("proj_a")  # a cent below the limit: allowed
    spent["proj_a"] = Decimal("10.00")
    watch.refresh()
    assert watch.enforcing("proj_a") and len(fired) == 1  # once a month
    with pytest.raises(ApiError) as refused:
        watch.admit("proj_a")
    assert (refused.value.status, refused.value.code) == (429, "insufficient_quota")
    watch.admit("proj_b")  # another project is not held back
    month[0] = "2026-12"
    spent["proj_a"] = Decimal("4.99")
    watch.refresh()
    assert not watch.enforcing("proj_a") and len(fired) == 1  # below the alert in the new month
    spent["proj_a"] = Decimal("5.00")
    watch.refresh()
    assert [f[2] for f in fired] == ["2026-11", "2026-12"]


def test_the_cli_manages_projects_limits_and_alerts(server: Server) -> None:
    def cli(*args: str) -> str:
        done = server.cli_plain(*args, "--base-url", server.api, "--api-key", server.admin_key)
        assert done.returncode == 0, done.stderr
        return done.stdout

    project_id = cli("projects", "create", "CLI team").strip()
    assert project_id.startswith("proj_") and "CLI team" in cli("projects", "list")
    assert "is now named 'Renamed'" in cli("projects", "rename", project_id, "Renamed")
    assert "Renamed" in cli("projects", "list")
    cli("projects", "archive", project_id)
    assert project_id not in cli("projects", "list") and project_id in cli("projects", "list", "--archived")

    other = cli("projects", "create", "Limited by CLI").strip()
    assert cli("limits", "set", "12.50", "--project", other).strip() == "$12.50 a month, inactive"
    assert cli("limits", "show", "--project", other).strip() == "$12.50 a month, inactive"
    assert cli("limits", "clear", "--project", other).strip() == "spend limit removed"
    assert cli("limits", "show", "--project", other).strip() == "no spend limit"
    assert cli("limits", "clear", "--project", other).strip() == "there was no spend limit"
    for amount in ("12.345", "-1", "ten", "nan"):
        wrong = server.cli_plain(
            "limits", "set", amount, "--base-url", server.api, "--api-key", server.admin_key
        )
        assert wrong.returncode == 2 and ("Invalid value" in wrong.stderr or "No such option" in wrong.stderr)

    alert_id = cli("alerts", "create", "10", "--email", "a@example.com", "--project", other).strip()
    assert alert_id in cli("alerts", "list", "--project", other) and "$10.00" in cli(
        "alerts", "list", "--project", other
    )
    assert cli("alerts", "delete", alert_id, "--project", other).strip() == f"deleted {alert_id}"
    assert alert_id not in cli("alerts", "list", "--project", other)
    missing = server.cli_plain(
        "alerts", "delete", alert_id, "--base-url", server.api, "--api-key", server.admin_key
    )
    assert missing.returncode == 3 and "404" in missing.stderr


def test_the_python_client_walks_every_page_and_raises_typed_errors(server: Server) -> None:
    from openusage import AdminApi
    from openusage.client import NotFoundError

    with AdminApi(server.admin_key, base_url=server.api) as api:
        made = [api.create_project(f"Bulk {n}").id for n in range(105)]  # past one page of 100
        assert set(made) <= {p.id for p in api.projects()}
        assert api.spend_limit(made[0]) is None
        assert api.set_spend_limit(500, made[0]).threshold_amount == 500
        assert api.clear_spend_limit(made[0]) and not api.clear_spend_limit(made[0])
        alert = api.create_spend_alert(700, ["a@example.com"], project_id=made[0])
        assert [a.id for a in api.spend_alerts(made[0])] == [alert.id]
        with pytest.raises(NotFoundError):
            api.project("proj_nobody")
