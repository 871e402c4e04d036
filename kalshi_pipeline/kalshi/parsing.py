"""Field parsers shared by the REST models and the WebSocket messages: one rule per wire type.

Kalshi sends prices (`*_dollars`) and counts (`*_fp`) as fixed-point JSON strings. `parse_fixed` turns such a
string into an exact `Decimal` and refuses everything else: a bare JSON number there would be a legacy
integer (cents or whole contracts), which must never be read as dollars. `parse_timestamp` reads RFC3339
times and `unix_ms` turns them into Unix milliseconds exactly. `Fields` reads the typed fields of one JSON
object; every error is a one-line `KalshiProtocolError` naming the field and the object.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from kalshi_pipeline.kalshi.errors import KalshiProtocolError

__all__ = ["Fields", "expect_object", "parse_fixed", "parse_timestamp", "unix_ms"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def parse_fixed(value: Any, key: str, where: str) -> Decimal:
    """Parse a fixed-point string (`"0.5600"`, `"1200.50"`) into an exact, finite `Decimal`.

    Args:
        value: The JSON value as decoded.
        key: The field name, for the error message.
        where: The object the field belongs to, for the error message.

    Raises:
        KalshiProtocolError: The value is not a string (a bare number included), not a decimal, or not finite.
    """
    if not isinstance(value, str):
        raise KalshiProtocolError(
            f"{where}: field {key!r} should be a fixed-point string, got {value!r}"
        )
    try:
        result = Decimal(value.strip())
    except InvalidOperation:
        raise KalshiProtocolError(
            f"{where}: field {key!r} is not a decimal number: {value!r}"
        ) from None
    if not result.is_finite():
        raise KalshiProtocolError(f"{where}: field {key!r} is not finite: {value!r}")
    return result


def parse_timestamp(value: Any, key: str = "timestamp", where: str = "payload") -> datetime:
    """Parse an RFC3339 timestamp (`Z` or offset, any fraction) into an aware UTC datetime.

    Raises:
        KalshiProtocolError: The value is not a non-empty string or not an RFC3339 timestamp.
    """
    if not isinstance(value, str) or not value:
        raise KalshiProtocolError(
            f"{where}: field {key!r} should be an RFC3339 string, got {value!r}"
        )
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise KalshiProtocolError(
            f"{where}: field {key!r} is not an RFC3339 timestamp: {value!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def unix_ms(moment: datetime) -> int:
    """An aware datetime as Unix milliseconds, exactly (sub-millisecond parts are floored)."""
    return (moment - _EPOCH) // _MILLISECOND


def expect_object(payload: Any, where: str) -> Mapping[str, Any]:
    """Return `payload` when it is a JSON object.

    Raises:
        KalshiProtocolError: It is not.
    """
    if not isinstance(payload, Mapping):
        raise KalshiProtocolError(f"{where}: expected a JSON object, got {type(payload).__name__}")
    return payload


class Fields:
    """Typed reads of one JSON object's fields.

    An absent key reads like `null`; unknown keys are ignored. The `required_*` readers refuse a missing or
    null field; the others return None for it. Errors name the field and `where` (the object).
    """

    __slots__ = ("obj", "where")

    def __init__(self, payload: Any, where: str) -> None:
        """Read `payload`, which must be a JSON object; `where` names it in errors."""
        self.obj = expect_object(payload, where)
        self.where = where

    @classmethod
    def named(cls, payload: Any, kind: str, *keys: str) -> Fields:
        """Read an object named in errors by `kind` and the first non-empty string of `keys` (its id)."""
        obj = expect_object(payload, kind)
        for key in keys:
            value = obj.get(key)
            if isinstance(value, str) and value:
                return cls(obj, f"{kind} {value!r}")
        return cls(obj, kind)

    def _present(self, key: str) -> Any:
        value = self.obj.get(key)
        if value is None:
            state = "null" if key in self.obj else "missing"
            raise KalshiProtocolError(f"{self.where}: required field {key!r} is {state}")
        return value

    def _text(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise KalshiProtocolError(
                f"{self.where}: field {key!r} should be a string, got {value!r}"
            )
        return value

    def text(self, key: str) -> str | None:
        """A string field."""
        value = self.obj.get(key)
        return None if value is None else self._text(key, value)

    def required_text(self, key: str) -> str:
        """A string field that must be present and non-empty."""
        value = self._text(key, self._present(key))
        if not value:
            raise KalshiProtocolError(f"{self.where}: required field {key!r} is empty")
        return value

    def fixed(self, key: str) -> Decimal | None:
        """A fixed-point string field (`*_dollars`, `*_fp`), see `parse_fixed`."""
        value = self.obj.get(key)
        return None if value is None else parse_fixed(value, key, self.where)

    def required_fixed(self, key: str) -> Decimal:
        """A fixed-point string field that must be present."""
        return parse_fixed(self._present(key), key, self.where)

    def number(self, key: str) -> Decimal | None:
        """A JSON number or numeric string (e.g. `floor_strike`, `fee_multiplier`), read exactly."""
        value = self.obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool):
            raise KalshiProtocolError(
                f"{self.where}: field {key!r} should be a number, got {value!r}"
            )
        if isinstance(value, int | float):
            return Decimal(str(value))
        return parse_fixed(value, key, self.where)

    def _integer(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return int(value)
            raise KalshiProtocolError(
                f"{self.where}: field {key!r} should be an integer, got {value!r}"
            )
        return value

    def integer(self, key: str) -> int | None:
        """An integer field (a string of digits is accepted)."""
        value = self.obj.get(key)
        return None if value is None else self._integer(key, value)

    def required_integer(self, key: str) -> int:
        """An integer field that must be present."""
        return self._integer(key, self._present(key))

    def _flag(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise KalshiProtocolError(
                f"{self.where}: field {key!r} should be true/false, got {value!r}"
            )
        return value

    def flag(self, key: str) -> bool | None:
        """A boolean field."""
        value = self.obj.get(key)
        return None if value is None else self._flag(key, value)

    def required_flag(self, key: str) -> bool:
        """A boolean field that must be present."""
        return self._flag(key, self._present(key))

    def time(self, key: str) -> datetime | None:
        """An RFC3339 timestamp field; an empty string reads as absent."""
        value = self.obj.get(key)
        if value is None or value == "":
            return None
        return parse_timestamp(value, key, self.where)

    def required_time(self, key: str) -> datetime:
        """An RFC3339 timestamp field that must be present and non-empty."""
        value = self._present(key)
        if value == "":
            raise KalshiProtocolError(f"{self.where}: required field {key!r} is empty")
        return parse_timestamp(value, key, self.where)

    def texts(self, key: str) -> tuple[str, ...]:
        """A list of strings (absent reads as empty)."""
        value = self.obj.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise KalshiProtocolError(
                f"{self.where}: field {key!r} should be a list of strings, got {value!r}"
            )
        return tuple(value)

    def mapping(self, key: str) -> dict[str, Any] | None:
        """An object field, as received."""
        value = self.obj.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise KalshiProtocolError(
                f"{self.where}: field {key!r} should be an object, got {value!r}"
            )
        return value

    def items(self, key: str) -> list[Any]:
        """A list field, as received (absent reads as empty)."""
        value = self.obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise KalshiProtocolError(
                f"{self.where}: field {key!r} should be a list, got {type(value).__name__}"
            )
        return value
