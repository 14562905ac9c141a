"""Telling people a spend alert fired: a log line always, an email and a webhook if set up.

The webhook (ours; OpenAI's alerts send email only) is a JSON POST signed with a shared
secret: ``X-Openusage-Signature: sha256=<hex HMAC-SHA256 of the body>``, as GitHub and
Stripe sign theirs, so the receiver can check it came from this server.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import smtplib
import time
from dataclasses import dataclass, field
from decimal import Decimal
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import orjson

from .registry import ORGANIZATION, SpendAlert

log = logging.getLogger("openusage.admin")
SIGNATURE_HEADER = "X-Openusage-Signature"


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def smtp_problem(url: str) -> str | None:
    """Why an SMTP URL cannot be used, or None: ``smtp[s]://[USER:PASSWORD@]HOST[:PORT]``."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        return f"the SMTP URL {url!r} must be smtp[s]://[USER:PASSWORD@]HOST[:PORT]"
    return None


@dataclass
class Notifier:
    smtp_url: str | None = None
    sender: str = "openusage@localhost"
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)

    def __call__(self, alert: SpendAlert, spent: Decimal, month: str) -> None:
        scope = "the organization" if alert.project_id == ORGANIZATION else f"project {alert.project_id}"
        threshold = f"${Decimal(alert.threshold_cents) / 100:,.2f}"
        headline = f"{scope} passed {threshold} in {month}"
        summary = f"Spend alert {alert.id}: {scope} has spent ${spent:,.2f} in {month}"
        summary += f", reaching its alert at {threshold}."
        log.warning(summary)
        if self.smtp_url and alert.recipients:
            try:
                self._email(alert, headline, summary)
            except (OSError, smtplib.SMTPException) as exc:
                log.error("the email of spend alert %s could not be sent: %s", alert.id, exc)
        if self.webhook_url:
            try:
                self._webhook(alert, spent, month)
            except httpx.HTTPError as exc:
                log.error("the webhook of spend alert %s could not be called: %s", alert.id, exc)

    def _email(self, alert: SpendAlert, headline: str, summary: str) -> None:
        assert self.smtp_url is not None
        parts = urlsplit(self.smtp_url)
        message = EmailMessage()
        prefix = f"{alert.subject_prefix} " if alert.subject_prefix else ""
        message["Subject"] = f"{prefix}Spend alert: {headline}"
        message["From"] = self.sender
        message["To"] = ", ".join(alert.recipients)
        message.set_content(summary + "\n")
        connect = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
        with connect(
            parts.hostname or "", parts.port or (465 if parts.scheme == "smtps" else 25), timeout=10
        ) as smtp:
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            smtp.send_message(message)

    def _webhook(self, alert: SpendAlert, spent: Decimal, month: str) -> None:
        assert self.webhook_url is not None
        payload: dict[str, Any] = {
            "object": "spend_alert.fired",
            "alert_id": alert.id,
            "project_id": alert.project_id or None,
            "threshold_amount": alert.threshold_cents,
            "currency": "USD",
            "month": month,
            "spent_amount": format(spent.normalize(), "f"),
            "fired_at": int(time.time()),
        }
        body = orjson.dumps(payload)
        headers = {"content-type": "application/json"}
        if self.webhook_secret:
            headers[SIGNATURE_HEADER] = signature(body, self.webhook_secret)
        httpx.post(self.webhook_url, content=body, headers=headers, timeout=10).raise_for_status()
