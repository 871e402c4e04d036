"""`OrderbookReplica`: a market's order book rebuilt locally from the `orderbook_delta` channel.

Not to be confused with `kalshi_pipeline.kalshi.models.Orderbook`, the immutable book one REST call returns:
a replica is mutable, follows the stream snapshot by delta, and is `stale` until a snapshot arrives (again
after a gap or a reconnect).
"""

from __future__ import annotations

from decimal import Decimal

from kalshi_pipeline.kalshi.ws.messages import OrderbookDelta, OrderbookSnapshot

__all__ = ["OrderbookReplica"]


class OrderbookReplica:
    """An order book rebuilt from `orderbook_snapshot` + `orderbook_delta` (bids of YES and NO, by price)."""

    def __init__(self, market_ticker: str) -> None:
        """Create an empty, stale book (it becomes fresh on the first snapshot)."""
        self.market_ticker = market_ticker
        self.yes: dict[Decimal, Decimal] = {}
        self.no: dict[Decimal, Decimal] = {}
        self.stale = True

    def apply_snapshot(self, snapshot: OrderbookSnapshot) -> None:
        """Replace the book with a snapshot and mark it fresh."""
        self.yes = {p: s for p, s in snapshot.yes if s > 0}
        self.no = {p: s for p, s in snapshot.no if s > 0}
        self.stale = False

    def apply_delta(self, delta: OrderbookDelta) -> None:
        """Apply a signed size change; a level whose size reaches zero or less is removed."""
        side = self.yes if delta.side == "yes" else self.no
        size = side.get(delta.price, Decimal(0)) + delta.delta
        if size > 0:
            side[delta.price] = size
        else:
            side.pop(delta.price, None)

    def levels(self, side: str) -> list[tuple[Decimal, Decimal]]:
        """Levels of one side ascending by price, the REST `orderbook_fp` order (best bid last)."""
        book = self.yes if side == "yes" else self.no
        return sorted(book.items())
