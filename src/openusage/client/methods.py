"""The client's methods, one per endpoint, made from the catalogue.

Each method gets a real signature and docstring (``help()`` and ``inspect`` show them);
``api.pyi``, written from the same functions by ``stubgen.py``, shows them to IDEs and type
checkers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from ..catalogue import ENDPOINTS, Endpoint

KEYWORD = inspect.Parameter.KEYWORD_ONLY
POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD


def parameter_names(endpoint: Endpoint) -> list[str]:
    """The endpoint's parameters in the starting document's order."""
    return ["start_time", "end_time", "bucket_width", *endpoint.filters, "group_by", "limit", "page"]


def parameter_doc(endpoint: Endpoint, name: str) -> str:
    if name == "start_time":
        return "Start of the range, inclusive: unix seconds or an aware datetime."
    if name == "end_time":
        return "End of the range, exclusive (default: now): unix seconds or an aware datetime."
    if name == "bucket_width":
        return f"Width of each bucket: {', '.join(endpoint.widths)} (default {endpoint.default_width})."
    if name == "group_by":
        return f"Group the results by these fields: {', '.join(endpoint.group_fields)}."
    if name == "limit":
        bounds = "; ".join(
            f"{w}: default {lim.default}, max {lim.maximum}" for w, lim in endpoint.limits.items()
        )
        return f"Buckets per page ({bounds})."
    if name == "page":
        return "The next_page cursor of a previous page (walking pages is done for you)."
    dimension = endpoint.filters[name]
    if dimension.type == "boolean":
        return f"Only results whose {dimension.name} is this."
    return f"Only results with these {dimension.name} values."


def docstring(endpoint: Endpoint) -> str:
    lines = [endpoint.summary, "", f"GET {endpoint.path}. Iterate the page to walk every later page.", ""]
    lines.append("Args:")
    lines += [f"    {name}: {parameter_doc(endpoint, name)}" for name in parameter_names(endpoint)]
    return "\n".join(lines)


def signature(endpoint: Endpoint) -> inspect.Signature:
    params = [inspect.Parameter("self", POSITIONAL)]
    for name in parameter_names(endpoint):
        if name == "start_time":
            params.append(inspect.Parameter(name, POSITIONAL))
        elif name == "end_time":
            params.append(inspect.Parameter(name, POSITIONAL, default=None))
        else:
            params.append(inspect.Parameter(name, KEYWORD, default=None))
    return inspect.Signature(params)


def _named(endpoint: Endpoint, function: Any) -> Any:
    function.__name__ = function.__qualname__ = endpoint.method
    function.__doc__ = docstring(endpoint)
    function.__signature__ = signature(endpoint)
    return function


def sync_method(endpoint: Endpoint) -> Callable[..., Any]:
    sig = signature(endpoint)

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = sig.bind(self, *args, **kwargs).arguments
        del arguments["self"]
        return self._page(endpoint, arguments)

    return _named(endpoint, method)  # type: ignore[no-any-return]


def async_method(endpoint: Endpoint) -> Callable[..., Coroutine[Any, Any, Any]]:
    sig = signature(endpoint)

    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = sig.bind(self, *args, **kwargs).arguments
        del arguments["self"]
        return await self._page(endpoint, arguments)

    return _named(endpoint, method)  # type: ignore[no-any-return]


def install(cls: type, factory: Callable[[Endpoint], Callable[..., Any]]) -> None:
    """Give ``cls`` one method per endpoint of the catalogue."""
    for endpoint in ENDPOINTS:
        setattr(cls, endpoint.method, factory(endpoint))
