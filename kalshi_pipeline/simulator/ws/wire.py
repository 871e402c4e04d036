"""Kalshi's WebSocket vocabulary: the channels, the numeric error codes and a command's error."""

from __future__ import annotations

from typing import Any

CHANNELS = ("ticker", "trade", "orderbook_delta", "market_lifecycle_v2")
"""The channels the simulated exchange serves."""

# Kalshi's WS error codes (AsyncAPI 2.0.0 "Error Codes Reference"). 6, 16 ("Market not found") and 17 are
# retired: never emitted, so an unknown market is answered with 11 (Invalid parameter). 10 and 25 are
# terminal: they end the subscription they name.
E_UNPROCESSABLE = 1
E_PARAMS_REQUIRED = 2
E_CHANNELS_REQUIRED = 3
E_SIDS_REQUIRED = 4
E_UNKNOWN_COMMAND = 5
E_UNKNOWN_SID = 7
E_UNKNOWN_CHANNEL = 8
E_CHANNEL_ERROR = 10
E_INVALID_PARAMETER = 11
E_ONE_SID_REQUIRED = 12
E_UNSUPPORTED_ACTION = 13
E_TICKER_REQUIRED = 14
E_ACTION_REQUIRED = 15
E_MATCH_IDS_REQUIRED = 23
E_BUFFER_OVERFLOW = 25
E_UNDERLYING_TICKERS_REQUIRED = 28

ERROR_TEXT = {
    E_UNPROCESSABLE: "Unable to process message",
    E_PARAMS_REQUIRED: "Params required",
    E_CHANNELS_REQUIRED: "Channels required",
    E_SIDS_REQUIRED: "Subscription IDs required",
    E_UNKNOWN_COMMAND: "Unknown command",
    E_UNKNOWN_SID: "Unknown subscription ID",
    E_UNKNOWN_CHANNEL: "Unknown channel name",
    E_CHANNEL_ERROR: "Channel error",
    E_INVALID_PARAMETER: "Invalid parameter",
    E_ONE_SID_REQUIRED: "Exactly one subscription ID is required",
    E_UNSUPPORTED_ACTION: "Unsupported action",
    E_TICKER_REQUIRED: "Market Ticker required",
    E_ACTION_REQUIRED: "Action required",
    E_MATCH_IDS_REQUIRED: "Match IDs required",
    E_BUFFER_OVERFLOW: "Subscription buffer overflow",
    E_UNDERLYING_TICKERS_REQUIRED: "Underlying tickers required",
}


class CommandError(Exception):
    """A client command Kalshi would answer with an `error` frame."""

    def __init__(self, code: int, **extra: Any) -> None:
        super().__init__(ERROR_TEXT.get(code, "error"))
        self.code = code
        self.extra = extra
