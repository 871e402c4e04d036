"""The public API of the client packages is exactly their `__all__`, each name defined inside the package."""

from __future__ import annotations

import types

import pytest

import kalshi_pipeline.kalshi as kalshi
import kalshi_pipeline.kalshi.ws as ws


@pytest.mark.parametrize("package", [kalshi, ws], ids=lambda p: p.__name__)
def test_all_public_members_are_exported(package: types.ModuleType) -> None:
    members = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(package.__all__) == sorted(members)
    assert len(set(package.__all__)) == len(package.__all__)


@pytest.mark.parametrize("package", [kalshi, ws], ids=lambda p: p.__name__)
def test_classes_and_functions_are_defined_in_the_package(package: types.ModuleType) -> None:
    # No re-export chains: a public class or function comes from a module of the package itself.
    for name in package.__all__:
        value = getattr(package, name)
        if isinstance(value, type | types.FunctionType):
            assert value.__module__.startswith(package.__name__ + "."), (name, value.__module__)
    assert not {"KalshiWebSocket", "TickerMessage"} & set(
        kalshi.__all__
    )  # the stream API lives in .ws
