"""A real HTTP proxy in front of the simulated exchange that can rewrite chosen answers.

Tests and `bench/faults.py` use it to stand in for an exchange that misbehaves in ways the simulator's own
fault spec does not model (an answer without its list, failures for some games only). Every request goes
over real sockets to the real simulator; `tamper` sees each answer and returns the one to send instead.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kalshi_pipeline.kalshi.tickers import event_date_code
from kalshi_pipeline_tests.processes import free_port

API_PREFIX = "/trade-api/v2"


@dataclass(frozen=True)
class Answer:
    """One answer of the exchange as the proxy received it (or as `tamper` rewrites it)."""

    path: str
    query: str
    status: int
    body: bytes


#: Given the upstream answer, return the answer to send (the same object to pass it through).
Tamper = Callable[[Answer], Answer]


def drop_candle_lists(rate: float, seed: int) -> Tamper:
    """Drop the `markets`/`candlesticks` list from `rate` of the candle answers (seeded draws)."""
    rng = random.Random(seed)

    def tamper(answer: Answer) -> Answer:
        if "candlesticks" not in answer.path or answer.status != 200 or rng.random() >= rate:
            return answer
        data = json.loads(answer.body)
        data.pop("markets", None)
        data.pop("candlesticks", None)
        return Answer(answer.path, answer.query, answer.status, json.dumps(data).encode())

    return tamper


def fail_candles_of(day: date) -> Tamper:
    """Answer 500 to every candle request of `day`'s games (found by the date in their event tickers)."""
    code = event_date_code(day)

    def tamper(answer: Answer) -> Answer:
        if "candlesticks" in answer.path and code in answer.path + answer.query:
            return Answer(answer.path, answer.query, 500, b'{"error": "internal server error"}')
        return answer

    return tamper


class ExchangeProxy:
    """Forward `GET /trade-api/v2/...` to `upstream` (an API base URL) and pass answers through `tamper`."""

    def __init__(self, upstream: str, tamper: Tamper) -> None:
        self.upstream = upstream.rstrip("/")
        self.tamper = tamper
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}{API_PREFIX}"
        #: How many answers `tamper` changed.
        self.tampered = 0
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/{path:path}", self._forward, methods=["GET"])])
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the exchange proxy did not start within 30 s")
            time.sleep(0.02)

    async def _forward(self, request: Request) -> Response:
        path = request.url.path.removeprefix(API_PREFIX)
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("kalshi-")}
        async with httpx.AsyncClient(timeout=30) as client:
            upstream = await client.get(
                self.upstream + path, params=request.query_params, headers=headers
            )
        received = Answer(path, request.url.query, upstream.status_code, upstream.content)
        sent = self.tamper(received)
        if sent is not received:
            with self._lock:
                self.tampered += 1
        return Response(sent.body, status_code=sent.status, media_type="application/json")

    def stop(self) -> None:
        """Stop the proxy and wait for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> ExchangeProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
