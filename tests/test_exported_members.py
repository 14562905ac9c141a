"""The package's public names are exactly its sorted ``__all__``."""

from __future__ import annotations

import types

import openusage


def test_all_is_sorted_and_complete() -> None:
    assert openusage.__all__ == sorted(openusage.__all__)
    public = {
        name
        for name, value in vars(openusage).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(openusage.__all__) - {"__version__"}
    for name in openusage.__all__:
        assert getattr(openusage, name) is not None
