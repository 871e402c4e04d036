"""Errors raised by the warehouse layer; every message is one actionable line."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of a driver error's message (its class name when the message is empty)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class WarehouseError(Exception):
    """Base class of every error the warehouse raises (bad URL, bad frame, failed SQL, unavailable database)."""


class WarehouseConfigError(WarehouseError):
    """The warehouse URL or an option is malformed or unsupported."""


class WarehouseDataError(WarehouseError):
    """A DataFrame handed to the warehouse does not fit its table (unknown table, columns, or values)."""


class WarehouseQueryError(WarehouseError):
    """The database rejected a statement (syntax, missing table, constraint); the transaction was rolled back."""


class WarehouseUnavailable(WarehouseError):
    """The database cannot be reached or went away mid-operation; the transaction was rolled back."""


class WarehouseLocked(WarehouseUnavailable):
    """An embedded DuckDB file stayed locked by another process for longer than the lock timeout."""
