"""``AdminApi``: projects, their API keys, spend limits and spend alerts (OpenAI's or ours).

The conventions of ``UsageApi``: the key from ``OPENAI_ADMIN_KEY``, lists walked page by
page for you, the same retry policy (reads, deletions and limit replacements are tried
again; creating a project or an alert is not, as a retry could make two), typed errors.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from .core import ClientConfig, request
from .errors import NotFoundError, error_for


class Project(BaseModel):
    id: str
    name: str | None = None
    created_at: int
    archived_at: int | None = None
    status: str | None = None


class ProjectApiKey(BaseModel):
    id: str
    name: str
    redacted_value: str
    created_at: int
    last_used_at: int | None = None
    owner: dict[str, Any]
    owner_project_access: str


class Enforcement(BaseModel):
    status: str


class SpendLimit(BaseModel):
    threshold_amount: int
    currency: str
    interval: str
    enforcement: Enforcement


class NotificationChannel(BaseModel):
    type: Literal["email"] = "email"
    recipients: list[str]
    subject_prefix: str | None = None


class SpendAlert(BaseModel):
    id: str
    threshold_amount: int
    currency: str
    interval: str
    notification_channel: NotificationChannel


def _scope(project_id: str | None) -> str:
    return "/organization" + (f"/projects/{project_id}" if project_id else "")


class AdminApi:
    """A client of the admin API's projects, project keys, spend limits and spend alerts.

    ``project_id=None`` in the limit and alert methods means the organization's own.
    Amounts are in cents, as in the API.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int = 2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._config = ClientConfig.resolve(api_key, base_url, timeout, max_retries)
        self._client = httpx.Client(transport=transport, timeout=self._config.timeout)
        self._sleep = time.sleep

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        retried: bool = True,
    ) -> dict[str, Any]:
        response = request(
            self._client, self._config, method, path, self._sleep, params=params, body=body, retried=retried
        )
        if response.status_code >= 400:
            raise error_for(response)
        answer: dict[str, Any] = response.json()
        return answer

    def _walk(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every object of a list, fetching its pages as needed."""
        params = {**params, "limit": 100}
        while True:
            page = self._call("GET", path, params=params)
            yield from page["data"]
            if not page.get("has_more") or not page.get("last_id"):
                return
            params["after"] = page["last_id"]

    # Projects

    def projects(self, *, include_archived: bool = False) -> Iterator[Project]:
        params = {"include_archived": "true"} if include_archived else {}
        return (Project.model_validate(p) for p in self._walk("/organization/projects", params))

    def project(self, project_id: str) -> Project:
        return Project.model_validate(self._call("GET", f"/organization/projects/{project_id}"))

    def create_project(self, name: str) -> Project:
        made = self._call("POST", "/organization/projects", body={"name": name}, retried=False)
        return Project.model_validate(made)

    def rename_project(self, project_id: str, name: str) -> Project:
        return Project.model_validate(
            self._call("POST", f"/organization/projects/{project_id}", body={"name": name})
        )

    def archive_project(self, project_id: str) -> Project:
        return Project.model_validate(self._call("POST", f"/organization/projects/{project_id}/archive"))

    def project_api_keys(self, project_id: str) -> Iterator[ProjectApiKey]:
        path = f"/organization/projects/{project_id}/api_keys"
        return (ProjectApiKey.model_validate(k) for k in self._walk(path, {}))

    def delete_project_api_key(self, project_id: str, key_id: str) -> None:
        self._call("DELETE", f"/organization/projects/{project_id}/api_keys/{key_id}")

    # Spend limits and alerts

    def spend_limit(self, project_id: str | None = None) -> SpendLimit | None:
        """The hard limit of the organization (or a project), None when there is none."""
        try:
            return SpendLimit.model_validate(self._call("GET", _scope(project_id) + "/spend_limit"))
        except NotFoundError:
            return None

    def set_spend_limit(self, cents: int, project_id: str | None = None) -> SpendLimit:
        body = {"threshold_amount": cents, "currency": "USD", "interval": "month"}
        return SpendLimit.model_validate(self._call("POST", _scope(project_id) + "/spend_limit", body=body))

    def clear_spend_limit(self, project_id: str | None = None) -> bool:
        """Remove the hard limit; False when there was none."""
        try:
            self._call("DELETE", _scope(project_id) + "/spend_limit")
        except NotFoundError:
            return False
        return True

    def spend_alerts(self, project_id: str | None = None) -> Iterator[SpendAlert]:
        return (SpendAlert.model_validate(a) for a in self._walk(_scope(project_id) + "/spend_alerts", {}))

    def create_spend_alert(
        self,
        cents: int,
        recipients: list[str],
        *,
        subject_prefix: str | None = None,
        project_id: str | None = None,
    ) -> SpendAlert:
        channel = {"type": "email", "recipients": recipients, "subject_prefix": subject_prefix}
        body = {
            "threshold_amount": cents,
            "currency": "USD",
            "interval": "month",
            "notification_channel": channel,
        }
        made = self._call("POST", _scope(project_id) + "/spend_alerts", body=body, retried=False)
        return SpendAlert.model_validate(made)

    def delete_spend_alert(self, alert_id: str, project_id: str | None = None) -> None:
        self._call("DELETE", _scope(project_id) + f"/spend_alerts/{alert_id}")

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> AdminApi:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
