"""`kalshi-pipeline probe`: measure a Kalshi WebSocket endpoint (Kalshi itself or the local simulator).

```
kalshi-pipeline probe --url ws://127.0.0.1:8765/trade-api/ws/v2 --market KXNBAGAME-25DEC19SASATL-ATL \\
    --channels ticker,trade,orderbook_delta,market_lifecycle_v2 --seconds 30 --force-reconnect 10 --json out.json
```

The caller (the CLI) passes a `KalshiConfig`: its credentials sign the handshake, and its WebSocket URL is
the default endpoint; `--url` accepts a ws(s) URL or a REST base URL (the WebSocket URL is derived). Without
`--market`, ticker, trade and lifecycle cover all markets, and `orderbook_delta` (which Kalshi only serves
for named markets) follows the most traded open market found by REST. The report lists the exchange's
status (per exchange index) and next maintenance window from REST (`GET /exchange/status`, `GET
/exchange/schedule`), then message types, per-channel rates, latency (receipt minus the message's `ts_ms`),
seq gaps, heartbeats and reconnect behaviour, as a table and as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kalshi_pipeline.kalshi.client import KalshiClient
from kalshi_pipeline.kalshi.config import KalshiConfig, validate_ws_url
from kalshi_pipeline.kalshi.errors import KalshiAuthError, KalshiConfigError, KalshiError
from kalshi_pipeline.kalshi.models import Market
from kalshi_pipeline.kalshi.parsing import expect_object
from kalshi_pipeline.kalshi.session import list_field
from kalshi_pipeline.kalshi.ws.client import KalshiWebSocket, Signer
from kalshi_pipeline.kalshi.ws.messages import (
    LifecycleMessage,
    OrderbookDelta,
    OrderbookSnapshot,
    StreamEvent,
    TickerMessage,
    TradeMessage,
    WsMessage,
)
from kalshi_pipeline.kalshi.ws.subscriptions import CHANNELS

_CHANNEL_OF = {
    TickerMessage: "ticker",
    TradeMessage: "trade",
    OrderbookSnapshot: "orderbook_delta",
    OrderbookDelta: "orderbook_delta",
    LifecycleMessage: "market_lifecycle_v2",
}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the probe's options to its subcommand parser."""
    parser.add_argument(
        "--url",
        default=None,
        help="ws(s) URL or REST base URL (default: the configured WebSocket URL)",
    )
    parser.add_argument(
        "--market",
        action="append",
        default=[],
        metavar="TICKER",
        help="market ticker to subscribe to; repeatable (none = all markets, and the most traded open "
        "market for orderbook_delta)",
    )
    parser.add_argument(
        "--channels",
        default="ticker,trade,orderbook_delta,market_lifecycle_v2",
        help=f"comma-separated channels out of {','.join(CHANNELS)}",
    )
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="how long to listen (default 30)"
    )
    parser.add_argument(
        "--force-reconnect",
        type=float,
        default=None,
        metavar="S",
        help="drop the connection after S seconds to measure reconnect and resubscribe",
    )
    parser.add_argument(
        "--json",
        default=None,
        metavar="PATH",
        help="also write the JSON report here ('-' = stdout)",
    )


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    data = sorted(values)
    out = {"min": round(data[0], 1), "max": round(data[-1], 1), "n": len(data)}
    if len(data) >= 2:
        q = statistics.quantiles(data, n=100, method="inclusive")
        out.update(p50=round(q[49], 1), p95=round(q[94], 1), p99=round(q[98], 1))
    else:
        out.update(p50=round(data[0], 1), p95=round(data[0], 1), p99=round(data[0], 1))
    return out


async def pick_open_market(config: KalshiConfig) -> str | None:
    """The open market (combos excluded) with the most 24-hour volume among the first 100 Kalshi lists."""
    async with KalshiClient(config) as client:
        body = await client.request_json(
            "GET", "/markets", {"status": "open", "mve_filter": "exclude", "limit": 100}
        )
    page = expect_object(body, "GET /markets")
    markets = [Market.from_payload(m) for m in list_field(page, "markets", "/markets")]
    if not markets:
        return None
    return max(markets, key=lambda m: m.volume_24h_fp or 0).ticker


async def probe(
    url: str,
    signer: Signer | None,
    markets: list[str],
    channels: list[str],
    seconds: float,
    force_reconnect_after: float | None = None,
    *,
    book_markets: list[str] | None = None,
) -> dict[str, Any]:
    """Connect, subscribe, listen for `seconds` and return the measurements as a JSON-able dict.

    Channels follow `markets` (empty = all markets); `orderbook_delta` follows `book_markets` when
    `markets` is empty.
    """
    ws = KalshiWebSocket(url, signer=signer, backoff_initial=0.25, backoff_max=5.0)
    types: Counter[str] = Counter()
    per_channel: Counter[str] = Counter()
    latency: dict[str, list[float]] = defaultdict(list)
    events: list[dict[str, Any]] = []
    connect_at: list[float] = []
    disconnect_at: list[float] = []
    started = time.monotonic()
    book_markets = markets or book_markets
    report: dict[str, Any] = {
        "url": url,
        "markets": markets,
        "orderbook_markets": book_markets if "orderbook_delta" in channels else [],
        "channels": channels,
        "seconds": seconds,
    }
    async with ws:
        t0 = time.monotonic()
        await ws.wait_connected(30)
        report["connect_seconds"] = round(time.monotonic() - t0, 3)
        t0 = time.monotonic()
        separate_book = not markets and "orderbook_delta" in channels
        others = [c for c in channels if c != "orderbook_delta"] if separate_book else channels
        sids = await ws.subscribe(others, markets or None) if others else {}
        if separate_book and book_markets:
            sids |= await ws.subscribe(["orderbook_delta"], book_markets)
        report["subscribe_ack_seconds"] = round(time.monotonic() - t0, 3)
        report["sids"] = sids
        report["list_subscriptions"] = await ws.list_subscriptions()
        forced = False
        deadline = started + seconds
        while (now := time.monotonic()) < deadline:
            if (
                force_reconnect_after is not None
                and not forced
                and now - started >= force_reconnect_after
            ):
                forced = True
                await ws.force_reconnect()
            try:
                item = await ws.next_item(min(0.5, max(deadline - now, 0.01)))
            except TimeoutError:
                continue
            if isinstance(item, StreamEvent):
                events.append(
                    {
                        "kind": item.kind,
                        "connection": item.connection,
                        "channel": item.channel,
                        "detail": item.detail,
                        "code": item.code,
                    }
                )
                if item.kind == "connect":
                    connect_at.append(time.monotonic())
                elif item.kind == "disconnect":
                    disconnect_at.append(time.monotonic())
                continue
            assert isinstance(item, WsMessage)
            types[item.type] += 1
            channel = _CHANNEL_OF.get(type(item), item.type)
            per_channel[channel] += 1
            if item.ts_ms is not None and not isinstance(item, OrderbookSnapshot):
                latency[channel].append(float(item.received_ms - item.ts_ms))
        elapsed = time.monotonic() - started
        stats = ws.stats
    reconnect_s = [
        round(c - d, 3) for d in disconnect_at for c in connect_at if c > d and c - d < 120
    ][: len(disconnect_at)]
    pings = stats.ping_times
    report.update(
        elapsed_seconds=round(elapsed, 3),
        message_types=dict(stats.by_type),
        channel_rates_per_s={c: round(n / elapsed, 3) for c, n in per_channel.items()},
        latency_ms={c: _quantiles(v) for c, v in latency.items()},
        seq_gaps=sum(
            1
            for e in events
            if (e["kind"] == "gap" and e["channel"] == "orderbook_delta")
            or (e["kind"] == "gap" and "seq gap" in e["detail"])
        ),
        gap_events=sum(1 for e in events if e["kind"] == "gap"),
        resyncs=stats.resyncs,
        errors=[e for e in events if e["kind"] == "error"][:20],
        malformed_frames=stats.malformed,
        reconnects=max(stats.connects - 1, 0),
        forced_reconnect=forced,
        reconnect_seconds=reconnect_s,
        pings_received=stats.pings_received,
        ping_payloads=dict(stats.ping_payloads),
        ping_interval_s=_quantiles([b - a for a, b in itertools.pairwise(pings)]),
        books_fresh=sum(not b.stale for b in ws.books.values()),
        events=events[:50],
    )
    return report


def _instant(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def exchange_report(config: KalshiConfig, now: datetime | None = None) -> dict[str, Any]:
    """The exchange's status (every exchange index) and its next maintenance window, over REST.

    `next_maintenance` is the schedule's first window not over at `now` (default: the wall clock), with
    whether it is in effect; `trading_expected_now` combines the standard hours and the windows.
    """
    now = now or datetime.now(UTC)
    async with KalshiClient(config) as client:
        status = await client.get_exchange_status()
        schedule = await client.get_exchange_schedule()
    window = schedule.next_maintenance(now)
    return {
        "exchange_active": status.exchange_active,
        "trading_active": status.trading_active,
        "exchange_estimated_resume_time": _instant(status.exchange_estimated_resume_time),
        "exchange_index_statuses": [asdict(s) for s in status.exchange_index_statuses],
        "next_maintenance": None
        if window is None
        else {
            "start": _instant(window.start),
            "end": _instant(window.end),
            "in_effect": window.contains(now),
        },
        "trading_expected_now": schedule.trading_expected(now),
    }


def render_exchange(exchange: dict[str, Any] | None) -> list[str]:
    """The report's exchange lines (status per index, next maintenance window)."""
    if exchange is None or "error" in exchange:
        why = "no REST endpoint for this WebSocket URL" if exchange is None else exchange["error"]
        return [f"exchange          not checked ({why})"]
    indexes = "; ".join(
        f"index {s['exchange_index']} {s['description'] or '-'}: trading {s['trading_active']}"
        for s in exchange["exchange_index_statuses"]
    )
    resume = exchange["exchange_estimated_resume_time"]
    window = exchange["next_maintenance"]
    if window is None:
        maintenance = "none scheduled"
    else:
        state = "in effect" if window["in_effect"] else "next"
        maintenance = f"{state} {window['start']} to {window['end']}"
    return [
        f"exchange          active {exchange['exchange_active']}, trading "
        f"{exchange['trading_active']}{f' (resumes about {resume})' if resume else ''}"
        f"{f'; {indexes}' if indexes else ''}",
        f"maintenance       {maintenance}",
    ]


def render_table(report: dict[str, Any]) -> str:
    """A plain-text table of the report."""
    lines = [
        f"endpoint          {report['url']}",
        *render_exchange(report.get("exchange")),
        f"listened          {report['elapsed_seconds']} s; connect {report['connect_seconds']} s; "
        f"subscribe ack {report['subscribe_ack_seconds']} s",
        f"subscriptions     {report['list_subscriptions']}",
        "",
        f"{'type':<24}{'messages':>10}",
    ]
    for kind, n in sorted(report["message_types"].items()):
        lines.append(f"{kind:<24}{n:>10}")
    lines += ["", f"{'channel':<22}{'msg/s':>8}{'lat p50':>10}{'p95':>9}{'p99':>9}{'max':>9}  (ms)"]
    for channel, rate in sorted(report["channel_rates_per_s"].items()):
        q = report["latency_ms"].get(channel, {})
        lines.append(
            f"{channel:<22}{rate:>8}{q.get('p50', '-'):>10}{q.get('p95', '-'):>9}{q.get('p99', '-'):>9}"
            f"{q.get('max', '-'):>9}"
        )
    ping = report["ping_interval_s"]
    lines += [
        "",
        f"seq gaps {report['seq_gaps']}, gap events {report['gap_events']}, resyncs {report['resyncs']}, "
        f"malformed {report['malformed_frames']}, errors {len(report['errors'])}",
        f"pings {report['pings_received']} payloads {report['ping_payloads']} interval p50 "
        f"{ping.get('p50', '-')} s",
        f"reconnects {report['reconnects']} (forced: {report['forced_reconnect']}) "
        f"reconnect seconds {report['reconnect_seconds']}",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace, config: KalshiConfig) -> int:
    """Run the probe from parsed arguments and the caller's settings; print the table (and JSON).

    Returns:
        A process exit code: 0 done, 1 connection or protocol failure, 2 bad settings, 3 rejected
        credentials.
    """
    channels = [c.strip() for c in args.channels.split(",") if c.strip()]
    try:
        bad = [c for c in channels if c not in CHANNELS]
        if bad or not channels:
            raise KalshiConfigError(
                f"--channels {args.channels!r}: use some of {','.join(CHANNELS)}"
            )
        if args.seconds <= 0:
            raise KalshiConfigError("--seconds must be > 0")
        url = validate_ws_url(args.url) if args.url else config.websocket_url()
        signer = config.signer()
        markets = list(dict.fromkeys(args.market))
        rest = _rest_config(args.url, url, config)
        book_markets = _book_markets(rest, channels, markets)
        exchange = _exchange(rest)
    except KalshiConfigError as exc:
        print(f"kalshi-pipeline probe: {exc}", file=sys.stderr)
        return 2
    if "orderbook_delta" in channels and not markets and not book_markets:
        channels.remove("orderbook_delta")
        if not channels:
            print(
                "kalshi-pipeline probe: orderbook_delta needs a --market (no open market found)",
                file=sys.stderr,
            )
            return 2
    if signer is None:
        print(
            "kalshi-pipeline probe: no credentials (KALSHI_API_KEY_ID + KALSHI_PRIVATE_KEY_PATH); Kalshi "
            "rejects unsigned WebSocket handshakes with 401",
            file=sys.stderr,
        )
    try:
        report = asyncio.run(
            probe(
                url,
                signer.sign if signer else None,
                markets,
                channels,
                args.seconds,
                args.force_reconnect,
                book_markets=book_markets,
            )
        )
    except KalshiAuthError as exc:
        print(f"kalshi-pipeline probe: {exc}", file=sys.stderr)
        return 3
    except (KalshiError, TimeoutError, OSError) as exc:
        print(f"kalshi-pipeline probe: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("\n".join(render_exchange(exchange)), file=sys.stderr)  # a paused exchange says why
        return 1
    report["exchange"] = exchange
    print(render_table(report))
    if args.json:
        text = json.dumps(report, indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(text + "\n")
    return 0


def _rest_config(url_arg: str | None, ws_url: str, config: KalshiConfig) -> KalshiConfig | None:
    """The REST endpoint belonging to the probed WebSocket: `--url` when it is a REST base URL, else the
    configured one when the probed WebSocket is the configured one; None otherwise."""
    if url_arg and urlsplit(url_arg.strip()).scheme in ("http", "https"):
        return replace(config, base_url=url_arg, ws_url=None)
    return config if ws_url == config.websocket_url() else None


def _exchange(rest: KalshiConfig | None) -> dict[str, Any] | None:
    """The exchange section of the report (None without a REST endpoint; a REST failure is one line)."""
    if rest is None:
        return None
    try:
        return asyncio.run(exchange_report(rest))
    except KalshiConfigError:
        raise  # bad settings are the caller's exit code 2
    except KalshiError as exc:
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        print(f"kalshi-pipeline probe: exchange status not checked: {error}", file=sys.stderr)
        return {"error": error}


def _book_markets(rest: KalshiConfig | None, channels: list[str], markets: list[str]) -> list[str]:
    """The market `orderbook_delta` follows without `--market`: the most traded open one, found by REST.

    REST is asked at the probed WebSocket's REST endpoint (`_rest_config`); without one (or when REST finds
    none) orderbook_delta is skipped with a one-line note.
    """
    if "orderbook_delta" not in channels or markets:
        return []
    if rest is None:
        print(
            "kalshi-pipeline probe: orderbook_delta skipped: pass --market to follow a book at a "
            "WebSocket URL other than the configured one",
            file=sys.stderr,
        )
        return []
    try:
        picked = asyncio.run(pick_open_market(rest))
    except KalshiConfigError:
        raise  # bad settings are the caller's exit code 2, not a skipped channel
    except KalshiError as exc:
        print(
            f"kalshi-pipeline probe: orderbook_delta skipped: no open market from {rest.base_url} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]})",
            file=sys.stderr,
        )
        return []
    if picked is None:
        print(
            f"kalshi-pipeline probe: orderbook_delta skipped: {rest.base_url} lists no open market",
            file=sys.stderr,
        )
        return []
    print(f"kalshi-pipeline probe: orderbook_delta follows {picked} (pass --market to choose)")
    return [picked]
