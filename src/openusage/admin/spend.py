"""This month's spend, kept current, and what it means for limits and alerts.

The month's costs (UTC months, priced by the price book as ``/v1/organization/costs``
prices them, per project) are summed every few seconds in the background, so checking
a limit on a proxied call is a dictionary lookup. A limit change takes effect at once: it
is compared with the figures already held. An alert fires once per month, when a refresh
finds the spend of its scope at or past its threshold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from ..catalogue import COSTS
from ..costs import PriceBook, cost_results
from ..server.errors import ApiError
from ..store import EventStore
from .registry import ORGANIZATION, Registry, SpendAlert

log = logging.getLogger("openusage.admin")
DAY = 86_400


def month_start(now: int) -> int:
    """The unix second the UTC month of ``now`` began."""
    moment = datetime.fromtimestamp(now, UTC)
    return int(moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp())


def month_name(now: int) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m")


def dollars(cents: int) -> str:
    return f"${Decimal(cents) / 100:,.2f}"


@dataclass
class Spend:
    """The month's spend in dollars: the organization's and each project's."""

    month: str = ""
    organization: Decimal = Decimal(0)
    projects: dict[str, Decimal] = field(default_factory=dict)

    def of(self, project_id: str) -> Decimal:
        return self.organization if project_id == ORGANIZATION else self.projects.get(project_id, Decimal(0))


def month_spend(store: EventStore, book: PriceBook, now: int) -> Spend:
    """The costs of the UTC month of ``now`` until ``now``, by project, as the costs API sums them."""
    start = month_start(now)
    days = [(day, min(day + DAY, now)) for day in range(start, now, DAY)]
    spend = Spend(month=month_name(now))
    if not days:
        return spend
    results = cost_results(days, ("project_id",), {}, store, book, COSTS.result_object)
    for day_results in results.values():
        for result in day_results:
            amount = Decimal(str(result["amount"]["value"]))
            project = result["project_id"] or ORGANIZATION
            spend.organization += amount
            if project != ORGANIZATION:
                spend.projects[project] = spend.projects.get(project, Decimal(0)) + amount
    return spend


class SpendWatch:
    """Limits and alerts against this month's spend; ``refresh`` runs every few seconds."""

    def __init__(
        self,
        registry: Registry,
        spend_of: Callable[[int], Spend],
        notify: Callable[[SpendAlert, Decimal, str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._spend_of = spend_of
        self._notify = notify
        self._clock = clock
        self.spend = Spend()
        self._limits: dict[str, int] = {}
        self._archived: frozenset[str] = frozenset()
        self.reload()

    def reload(self) -> None:
        """Read limits and archived projects again (after a change made through the API)."""
        self._limits = self._registry.limits()
        self._archived = frozenset(
            p.id for p in self._registry.projects(include_archived=True) if p.archived_at
        )

    def refresh(self) -> None:
        """Sum the month's spend again, and fire the alerts it reaches (blocking: a thread)."""
        now = int(self._clock())
        self.spend = self._spend_of(now)
        self.reload()
        for alert in self._registry.alerts():
            spent = self.spend.of(alert.project_id)
            if spent * 100 >= alert.threshold_cents and self._registry.fire(alert.id, self.spend.month):
                self._notify(alert, spent, self.spend.month)

    def enforcing(self, project_id: str) -> bool:
        """Whether the limit of this scope (the organization's: ``ORGANIZATION``) is reached."""
        cents = self._limits.get(project_id)
        return cents is not None and self.spend.of(project_id) * 100 >= cents

    def admit(self, project_id: str) -> None:
        """Refuse a proxied call of this project if it is archived or a limit is reached."""
        if project_id in self._archived:
            raise ApiError(401, f"The project {project_id} of this key is archived.", code="invalid_api_key")
        for scope, what in ((project_id, f"project {project_id}"), (ORGANIZATION, "organization")):
            if self.enforcing(scope):
                raise ApiError(
                    429,
                    f"The {what} reached its hard spend limit of {dollars(self._limits[scope])} for "
                    f"{self.spend.month} (spent ${self.spend.of(scope):,.2f}); raise or remove the limit "
                    "to make calls again.",
                    type="insufficient_quota",
                    code="insufficient_quota",
                )

    def has_work(self) -> bool:
        """Whether any limit or alert needs the month's spend."""
        return bool(self._limits) or bool(self._registry.alerts())
