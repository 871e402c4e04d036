"""The REST API tests' client, on the session's default simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest


@pytest.fixture(scope="module")
def api(simulator: Any) -> Iterator[httpx.Client]:
    """An httpx client on the default simulator's REST base URL."""
    with httpx.Client(base_url=simulator.base_url, timeout=30) as client:
        yield client
