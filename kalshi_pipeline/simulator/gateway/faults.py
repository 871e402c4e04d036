"""Deterministic fault injection for the simulated exchange's REST API: the spec, and its middleware.

SPEC is a comma-separated list of entries:

- `429=RATE`, `500=RATE`, `502=RATE`, `503=RATE`, `504=RATE`: answer that status with probability RATE
  (0..1) per request (429 with Kalshi's `{"error": "too many requests"}` body, no Retry-After).
- `reset=RATE`: abort the TCP connection without any response.
- `latency=RATE:MS`: delay the request by MS milliseconds with probability RATE (combines with the others).
- `script=OUT;OUT;...`: the next requests, in order, get these outcomes (`429`, `500`, `502`, `503`,
  `504`, `reset`, `ok`), then normal behaviour resumes.

Example: `script=429;503;reset;ok,500=0.02,latency=0.1:250`. Random draws come from the simulator seed,
so a run with the same seed and the same request order sees the same faults. Faults apply to every path
under `/trade-api/` (including `/exchange/status`); `GET /_sim/health` is never faulted.

A `reset` aborts the request's TCP transport through `kalshi_pipeline.simulator.connections` (ASGI itself
offers no way to drop a connection without answering).
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import deque
from dataclasses import dataclass, field

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from kalshi_pipeline.simulator.connections import Connections
from kalshi_pipeline.simulator.errors import error_response, too_many_requests
from kalshi_pipeline.simulator.gateway.stats import GatewayStats
from kalshi_pipeline.simulator.paths import through_gateway

OUTCOMES = ("429", "500", "502", "503", "504", "reset")


@dataclass(frozen=True)
class FaultDecision:
    """What to do with one request: an outcome (`ok` or a fault) and a delay in milliseconds."""

    outcome: str = "ok"
    delay_ms: int = 0


@dataclass
class FaultPlan:
    """A parsed fault spec; `decide()` is called once per request, in arrival order."""

    rates: dict[str, float] = field(default_factory=dict)
    latency_rate: float = 0.0
    latency_ms: int = 0
    script: deque[str] = field(default_factory=deque)
    seed: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(f"faults:{self.seed}")
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether any fault can happen at all."""
        return bool(self.rates or self.latency_rate or self.script)

    def decide(self) -> FaultDecision:
        """The decision for the next request."""
        with self._lock:
            delay = 0
            if self.latency_rate and self._random.random() < self.latency_rate:
                delay = self.latency_ms
            if self.script:
                return FaultDecision(self.script.popleft(), delay)
            draw = self._random.random()
            total = 0.0
            for outcome in OUTCOMES:
                total += self.rates.get(outcome, 0.0)
                if draw < total:
                    return FaultDecision(outcome, delay)
            return FaultDecision("ok", delay)


def _rate(text: str, entry: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"fault entry {entry!r}: {text!r} is not a probability") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"fault entry {entry!r}: rate must be between 0 and 1")
    return value


def parse_faults(spec: str | None, seed: int = 0) -> FaultPlan:
    """Parse a fault SPEC (see the module docstring); raise ValueError with the offending entry."""
    plan = FaultPlan(seed=seed)
    if not spec or not spec.strip():
        return plan
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, value = entry.partition("=")
        name = name.strip().lower()
        if not sep:
            raise ValueError(f"fault entry {entry!r} must look like NAME=VALUE")
        if name in OUTCOMES:
            plan.rates[name] = _rate(value, entry)
        elif name == "latency":
            rate, colon, ms = value.partition(":")
            if not colon or not ms.strip().isdigit():
                raise ValueError(f"fault entry {entry!r} must look like latency=RATE:MS")
            plan.latency_rate = _rate(rate, entry)
            plan.latency_ms = int(ms)
        elif name == "script":
            for step in value.split(";"):
                step = step.strip().lower()
                if step not in (*OUTCOMES, "ok"):
                    raise ValueError(
                        f"fault script step {step!r} is not one of {', '.join((*OUTCOMES, 'ok'))}"
                    )
                plan.script.append(step)
        else:
            raise ValueError(
                f"unknown fault {name!r}; use 429/500/502/503/504/reset=RATE, latency=RATE:MS or script=..."
            )
    if sum(plan.rates.values()) > 1.0:
        raise ValueError("fault rates add up to more than 1")
    return plan


class FaultInjection:
    """Gateway middleware applying a `FaultPlan`: delays, error statuses and dropped connections."""

    def __init__(
        self, app: ASGIApp, plan: FaultPlan, stats: GatewayStats, connections: Connections
    ) -> None:
        """Wrap `app`; `connections` finds the transport a `reset` aborts, `stats` counts fault 429s."""
        self.app = app
        self.plan = plan
        self.stats = stats
        self.connections = connections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.plan.active or not through_gateway(scope):
            await self.app(scope, receive, send)
            return
        decision = self.plan.decide()
        if decision.delay_ms:
            await asyncio.sleep(decision.delay_ms / 1000)
        if decision.outcome == "reset":
            await self.connections.reset(scope)
            return
        if decision.outcome != "ok":
            if decision.outcome == "429":
                self.stats.record("fault_429")
            await _fault_response(decision.outcome)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _fault_response(outcome: str) -> Response:
    if outcome == "429":
        return too_many_requests()
    codes = {
        "500": "internal_server_error",
        "502": "bad_gateway",
        "503": "service_unavailable",
        "504": "gateway_timeout",
    }
    code = codes[outcome]
    return error_response(int(outcome), code, code.replace("_", " "))
