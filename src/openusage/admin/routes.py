"""OpenAI's admin API for projects, project API keys, spend limits and spend alerts.

Shapes as the official clients' types (openai-python 3.57): ``organization.project``,
``organization.project.api_key``, ``organization.spend_limit`` / ``project.spend_limit``,
``organization.spend_alert`` / ``project.spend_alert``, lists paged by object id.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..keyring import MANAGE, READ, ApiKey, Keyring
from ..server.errors import ApiError, bad_request, shown
from .registry import ORGANIZATION, Project, Registry, SpendAlert, new_id
from .spend import SpendWatch

MAX_CENTS = 10**12
MAX_RECIPIENTS = 50
MAX_NAME = 256

Handler = Callable[[Request], Awaitable[Response]]
Json = Callable[..., Response]


def _project(p: Project) -> dict[str, Any]:
    return {
        "object": "organization.project",
        "id": p.id,
        "name": p.name,
        "created_at": p.created_at,
        "archived_at": p.archived_at,
        "status": "archived" if p.archived_at else "active",
    }


def _api_key(key: ApiKey, project: Project | None) -> dict[str, Any]:
    # A proxy key stands for a service (its user, if any, is whose calls it makes).
    if key.user_id:
        user = {
            "id": key.user_id,
            "name": key.user_id,
            "email": "",
            "role": "member",
            "created_at": key.created_at,
        }
        owner: dict[str, Any] = {"type": "user", "user": user}
    else:
        account = {"id": key.id, "name": key.name, "role": "member", "created_at": key.created_at}
        owner = {"type": "service_account", "service_account": account}
    return {
        "object": "organization.project.api_key",
        "id": key.id,
        "name": key.name,
        "redacted_value": key.redacted,
        "created_at": key.created_at,
        "last_used_at": None,
        "owner": owner,
        "owner_project_access": "inactive" if project is not None and project.archived_at else "active",
    }


def _page(objects: list[dict[str, Any]], params: dict[str, str]) -> dict[str, Any]:
    """A page of ``objects`` (in list order) as OpenAI pages by object id: after, before, limit."""
    limit = _limit(params.get("limit"))
    if params.get("order") == "desc":
        objects = objects[::-1]
    ids = [o["id"] for o in objects]
    for name in ("after", "before"):
        if name in params and params[name] not in ids:
            raise bad_request(f"No object with id {shown(params[name])} to page {name}.", param=name)
    if "after" in params:
        objects = objects[ids.index(params["after"]) + 1 :]
    elif "before" in params:
        objects = objects[: ids.index(params["before"])][-limit:]
    data = objects[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(objects) > limit,
    }


def _limit(value: str | None) -> int:
    if value is None:
        return 20
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise bad_request(f"limit must be an integer from 1 to 100, got {shown(value)}.", param="limit")
    return int(value)


def _fields(body: dict[str, Any], allowed: set[str], required: set[str]) -> None:
    if unknown := sorted(set(body) - allowed):
        raise bad_request(f"Unknown parameter: '{unknown[0]}'.", param=unknown[0], code="unknown_parameter")
    if missing := sorted(required - {k for k, v in body.items() if v is not None}):
        raise bad_request(f"Missing required parameter: '{missing[0]}'.", param=missing[0])


def _threshold(body: dict[str, Any]) -> int:
    """The body's amount in cents, after checking its currency and interval."""
    _fields(body, {"threshold_amount", "currency", "interval", "notification_channel"}, {"threshold_amount"})
    if body.get("currency", "USD") != "USD":
        raise bad_request("Only the currency 'USD' is supported.", param="currency")
    if body.get("interval", "month") != "month":
        raise bad_request("Only the interval 'month' is supported.", param="interval")
    cents = body["threshold_amount"]
    if isinstance(cents, bool) or not isinstance(cents, int) or not 0 <= cents <= MAX_CENTS:
        raise bad_request(
            f"threshold_amount must be a whole number of cents from 0 to {MAX_CENTS}.",
            param="threshold_amount",
        )
    return cents


def _channel(value: Any) -> tuple[tuple[str, ...], str | None]:
    """The recipients and subject prefix of an email notification channel."""
    if not isinstance(value, dict):
        raise bad_request("notification_channel must be an object.", param="notification_channel")
    _fields(value, {"type", "recipients", "subject_prefix"}, {"type", "recipients"})
    if value["type"] != "email":
        raise bad_request(
            "Only the notification channel type 'email' is supported.", param="notification_channel.type"
        )
    recipients = value["recipients"]
    if (
        not isinstance(recipients, list)
        or not 1 <= len(recipients) <= MAX_RECIPIENTS
        or not all(isinstance(r, str) and "@" in r and 3 <= len(r) <= 254 for r in recipients)
    ):
        raise bad_request(
            f"recipients must be 1 to {MAX_RECIPIENTS} email addresses.",
            param="notification_channel.recipients",
        )
    prefix = value.get("subject_prefix")
    if prefix is not None and (not isinstance(prefix, str) or len(prefix) > 100 or "\n" in prefix):
        raise bad_request(
            "subject_prefix must be a line of at most 100 characters.",
            param="notification_channel.subject_prefix",
        )
    return tuple(recipients), prefix


ALERT_FIELDS = {"threshold_amount", "currency", "interval", "notification_channel"}


def _alert_fields(body: dict[str, Any]) -> tuple[int, tuple[str, ...], str | None]:
    """An alert's amount in cents, recipients and subject prefix, each checked."""
    _fields(body, ALERT_FIELDS, ALERT_FIELDS)
    recipients, prefix = _channel(body["notification_channel"])
    return _threshold(body), recipients, prefix


def admin_routes(
    registry: Registry,
    keyring: Keyring,
    watch: SpendWatch,
    require: Callable[[Request, str], Awaitable[ApiKey]],
    read_body: Callable[[Request, int], Awaitable[bytes]],
    json_response: Json,
) -> list[Route]:
    """The routes of the admin API, under ``/v1/organization``."""

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await read_body(request, 64 * 1024)
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"The body is not valid JSON: {exc}.") from None
        if not isinstance(body, dict):
            raise bad_request("The body must be a JSON object.")
        return body

    async def existing(project_id: str) -> Project:
        project = await run_in_threadpool(registry.project, project_id)
        if project is None:
            raise ApiError(404, f"No project found with id {shown(project_id)}.", param="project_id")
        return project

    def name_of(body: dict[str, Any]) -> str:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            raise bad_request(f"name must be a string of 1 to {MAX_NAME} characters.", param="name")
        for unsupported in ("external_key_id", "geography", "residency"):
            if body.get(unsupported) is not None:
                raise bad_request(f"'{unsupported}' is not supported by this server.", param=unsupported)
        return name

    async def list_projects(request: Request) -> Response:
        await require(request, READ)
        archived = request.query_params.get("include_archived", "false").lower() == "true"
        projects = await run_in_threadpool(registry.projects, include_archived=archived)
        return json_response(_page([_project(p) for p in projects], dict(request.query_params)))

    async def create_project(request: Request) -> Response:
        await require(request, MANAGE)
        body = await body_of(request)
        _fields(body, {"name", "external_key_id", "geography", "residency"}, {"name"})
        project = await run_in_threadpool(registry.create_project, name_of(body))
        return json_response(_project(project))

    async def project(request: Request) -> Response:
        project_id = request.path_params["project_id"]
        if request.method == "GET":
            await require(request, READ)
            return json_response(_project(await existing(project_id)))
        await require(request, MANAGE)
        body = await body_of(request)
        _fields(body, {"name", "external_key_id", "geography"}, {"name"})
        await existing(project_id)
        renamed = await run_in_threadpool(registry.rename_project, project_id, name_of(body))
        assert renamed is not None
        return json_response(_project(renamed))

    async def archive(request: Request) -> Response:
        await require(request, MANAGE)
        project_id = request.path_params["project_id"]
        await existing(project_id)
        archived = await run_in_threadpool(registry.archive_project, project_id)
        await run_in_threadpool(watch.reload)  # its proxy keys stop at once
        assert archived is not None
        return json_response(_project(archived))

    def keys_of(project_id: str) -> list[ApiKey]:
        return [k for k in keyring.list() if k.project_id == project_id and k.revoked_at is None]

    async def project_keys(request: Request) -> Response:
        await require(request, READ)
        project = await existing(request.path_params["project_id"])
        keys = await run_in_threadpool(keys_of, project.id)
        return json_response(_page([_api_key(k, project) for k in keys], dict(request.query_params)))

    async def project_key(request: Request) -> Response:
        await require(request, READ if request.method == "GET" else MANAGE)
        project = await existing(request.path_params["project_id"])
        key_id = request.path_params["key_id"]
        key = next((k for k in await run_in_threadpool(keys_of, project.id) if k.id == key_id), None)
        if key is None:
            raise ApiError(
                404, f"No API key {shown(key_id)} in project {shown(project.id)}.", param="api_key_id"
            )
        if request.method == "GET":
            return json_response(_api_key(key, project))
        await run_in_threadpool(keyring.revoke, key.id)
        return json_response(
            {"object": "organization.project.api_key.deleted", "id": key.id, "deleted": True}
        )

    async def scope_of(request: Request) -> tuple[str, str]:
        """The scope a limit or alert route is about, and its object prefix."""
        if "project_id" in request.path_params:
            return (await existing(request.path_params["project_id"])).id, "project"
        return ORGANIZATION, "organization"

    def limit_object(scope: str, prefix: str, cents: int) -> dict[str, Any]:
        return {
            "object": f"{prefix}.spend_limit",
            "threshold_amount": cents,
            "currency": "USD",
            "interval": "month",
            "enforcement": {"status": "enforcing" if watch.enforcing(scope) else "inactive"},
        }

    async def spend_limit(request: Request) -> Response:
        await require(request, READ if request.method == "GET" else MANAGE)
        scope, prefix = await scope_of(request)
        if request.method == "POST":
            body = await body_of(request)
            _fields(
                body,
                {"threshold_amount", "currency", "interval"},
                {"threshold_amount", "currency", "interval"},
            )
            await run_in_threadpool(registry.set_limit, scope, _threshold(body))
        elif request.method == "DELETE":
            deleted = await run_in_threadpool(registry.clear_limit, scope)
            await run_in_threadpool(watch.reload)
            if not deleted:
                raise ApiError(404, f"No spend limit is set for this {prefix}.")
            return json_response({"object": f"{prefix}.spend_limit.deleted", "deleted": True})
        # The month's spend summed now: a new limit is enforced, a raised one lifted, at once.
        await run_in_threadpool(watch.refresh)
        cents = (await run_in_threadpool(registry.limits)).get(scope)
        if cents is None:
            raise ApiError(404, f"No spend limit is set for this {prefix}.")
        return json_response(limit_object(scope, prefix, cents))

    def alert_object(alert: SpendAlert, prefix: str) -> dict[str, Any]:
        channel = {
            "type": "email",
            "recipients": list(alert.recipients),
            "subject_prefix": alert.subject_prefix,
        }
        return {
            "object": f"{prefix}.spend_alert",
            "id": alert.id,
            "threshold_amount": alert.threshold_cents,
            "currency": "USD",
            "interval": "month",
            "notification_channel": channel,
        }

    async def spend_alerts(request: Request) -> Response:
        await require(request, READ if request.method == "GET" else MANAGE)
        scope, prefix = await scope_of(request)
        if request.method == "GET":
            alerts = await run_in_threadpool(registry.alerts, scope)
            return json_response(_page([alert_object(a, prefix) for a in alerts], dict(request.query_params)))
        cents, recipients, prefix_text = _alert_fields(await body_of(request))
        alert = SpendAlert(new_id("spend_alert_"), scope, cents, recipients, prefix_text, int(time.time()))
        await run_in_threadpool(registry.save_alert, alert)
        return json_response(alert_object(alert, prefix))

    async def spend_alert(request: Request) -> Response:
        await require(request, READ if request.method == "GET" else MANAGE)
        scope, prefix = await scope_of(request)
        alert_id = request.path_params["alert_id"]
        alert = await run_in_threadpool(registry.alert, alert_id)
        if alert is None or alert.project_id != scope:
            raise ApiError(404, f"No spend alert found with id {shown(alert_id)}.", param="alert_id")
        if request.method == "GET":
            return json_response(alert_object(alert, prefix))
        if request.method == "DELETE":
            await run_in_threadpool(registry.delete_alert, alert.id)
            return json_response({"object": f"{prefix}.spend_alert.deleted", "id": alert.id, "deleted": True})
        cents, recipients, prefix_text = _alert_fields(await body_of(request))
        updated = SpendAlert(alert.id, scope, cents, recipients, prefix_text, alert.created_at)
        await run_in_threadpool(registry.save_alert, updated)
        return json_response(alert_object(updated, prefix))

    base = "/v1/organization"
    project_base = base + "/projects/{project_id}"
    return [
        Route(base + "/projects", list_projects, methods=["GET"]),
        Route(base + "/projects", create_project, methods=["POST"]),
        Route(project_base, project, methods=["GET", "POST"]),
        Route(project_base + "/archive", archive, methods=["POST"]),
        Route(project_base + "/api_keys", project_keys, methods=["GET"]),
        Route(project_base + "/api_keys/{key_id}", project_key, methods=["GET", "DELETE"]),
        Route(base + "/spend_limit", spend_limit, methods=["GET", "POST", "DELETE"]),
        Route(project_base + "/spend_limit", spend_limit, methods=["GET", "POST", "DELETE"]),
        Route(base + "/spend_alerts", spend_alerts, methods=["GET", "POST"]),
        Route(project_base + "/spend_alerts", spend_alerts, methods=["GET", "POST"]),
        Route(base + "/spend_alerts/{alert_id}", spend_alert, methods=["GET", "POST", "DELETE"]),
        Route(project_base + "/spend_alerts/{alert_id}", spend_alert, methods=["GET", "POST", "DELETE"]),
    ]
