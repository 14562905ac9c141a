"""Writes ``api.pyi``: the exact signatures of the client's methods, from the catalogue.

Run ``python -m openusage.client.stubgen`` after changing the catalogue; a test fails while
the stub on disk differs from what this writes.
"""

from __future__ import annotations

from pathlib import Path

from ..catalogue import ENDPOINTS, Endpoint
from .methods import docstring, parameter_names
from .models import RESULT_MODELS

STUB_PATH = Path(__file__).with_name("api.pyi")

HEADER = """# Written by openusage.client.stubgen from the catalogue: do not edit by hand.
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Literal

import httpx

from .models import {models}
from .pages import AsyncUsagePage, UsagePage

"""

CLASS = """class {name}:
    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int = 2,
        transport: {transport} | None = None,
        http_client: {client} | None = None,
    ) -> None: ...
    @property
    def base_url(self) -> str: ...
{methods}
    {a}def close(self) -> None: ...
    {a}def __{ae}enter__(self) -> {name}: ...
    {a}def __{ae}exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
"""


def _literal(values: tuple[str, ...]) -> str:
    return "Literal[" + ", ".join(repr(v) for v in values) + "]"


def _annotation(endpoint: Endpoint, name: str) -> str:
    if name in ("start_time", "end_time"):
        return "int | datetime"
    if name == "bucket_width":
        return _literal(endpoint.widths)
    if name == "group_by":
        return f"Sequence[{_literal(endpoint.group_fields)}]"
    if name == "limit":
        return "int"
    if name == "page":
        return "str"
    dimension = endpoint.filters[name]
    if dimension.type == "boolean":
        return "bool"
    return f"Sequence[{_literal(dimension.values)}]" if dimension.values else "Sequence[str]"


def _method(endpoint: Endpoint, is_async: bool) -> str:
    params = ["self"]
    for name in parameter_names(endpoint):
        annotation = _annotation(endpoint, name)
        if name == "start_time":
            params.append(f"{name}: {annotation}")
            continue
        if name == "bucket_width":
            params.append("*")
        params.append(f"{name}: {annotation} | None = None")
    page = "AsyncUsagePage" if is_async else "UsagePage"
    result = RESULT_MODELS[endpoint.name].__name__
    doc = docstring(endpoint).replace("\n", "\n        ").replace("\n        \n", "\n\n")
    return (
        f"    {'async ' if is_async else ''}def {endpoint.method}(\n"
        + "".join(f"        {p},\n" for p in params)
        + f"    ) -> {page}[{result}]:\n"
        + f'        """{doc}"""\n'
    )


def render_stub() -> str:
    models = ", ".join(sorted({RESULT_MODELS[e.name].__name__ for e in ENDPOINTS}))
    text = HEADER.format(models=models)
    for name, is_async in (("UsageApi", False), ("AsyncUsageApi", True)):
        text += CLASS.format(
            name=name,
            transport="httpx.AsyncBaseTransport" if is_async else "httpx.BaseTransport",
            client="httpx.AsyncClient" if is_async else "httpx.Client",
            methods="".join(_method(e, is_async) for e in ENDPOINTS),
            a="async " if is_async else "",
            ae="a" if is_async else "",
        )
        if not is_async:
            text += "\n\n"
    return text


if __name__ == "__main__":
    STUB_PATH.write_text(render_stub())
    print(f"wrote {STUB_PATH}")
