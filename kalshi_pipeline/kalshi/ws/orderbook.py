"""`OrderbookReplica`: a market's order book rebuilt locally from the `orderbook_delta` channel.

Not to be confused with `kalshi_pipeline.kalshi.models.Orderbook`, the immutable book one REST call returns:
a replica is mutable, follows the stream snapshot by delta, and is `stale` until a snapshot arrives (again
after a gap or a reconnect). A replica always holds NO bids at NO-leg prices, as REST reports them: under
`use_yes_price` (Kalshi then sends NO-side levels in YES-leg prices) it maps them back (1 - price).
"""

from __future__ import annotations

from decimal import Decimal

from kalshi_pipeline.kalshi.ws.messages import OrderbookDelta, OrderbookSnapshot

__all__ = ["OrderbookReplica"]


class OrderbookReplica:
    """An order book rebuilt from `orderbook_snapshot` + `orderbook_delta` (bids of YES and NO, by price)."""

    def __init__(self, market_ticker: str, *, yes_prices: bool = False) -> None:
        """Create an empty, stale book; `yes_prices`: the stream sends NO levels in YES-leg prices."""
        self.market_ticker = market_ticker
        self.yes: dict[Decimal, Decimal] = {}
        self.no: dict[Decimal, Decimal] = {}
        self.stale = True
        self.yes_prices = yes_prices

    def _no_price(self, price: Decimal) -> Decimal:
        return Decimal(1) - price if self.yes_prices else price

    def apply_snapshot(self, snapshot: OrderbookSnapshot) -> None:
        """Replace the book with a snapshot and mark it fresh."""
        self.yes = {p: s for p, s in snapshot.yes if s > 0}
        self.no = {self._no_price(p): s for p, s in snapshot.no if s > 0}
        self.stale = False

    def apply_delta(self, delta: OrderbookDelta) -> None:
        """Apply a signed size change; a level whose size reaches zero or less is removed."""
        side = self.yes if delta.side == "yes" else self.no
        price = delta.price if delta.side == "yes" else self._no_price(delta.price)
        size = side.get(price, Decimal(0)) + delta.delta
        if size > 0:
            side[price] = size
        else:
            side.pop(price, None)

    def levels(self, side: str) -> list[tuple[Decimal, Decimal]]:
        """Levels of one side ascending by price, the REST `orderbook_fp` order (best bid last)."""
        book = self.yes if side == "yes" else self.no
        return sorted(book.items())
