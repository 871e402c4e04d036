"""Parsing and redaction of warehouse URLs (`postgresql://...` and `duckdb:///path`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from kalshi_pipeline.warehouse.errors import WarehouseConfigError

ENV_VAR = "KALSHI_WAREHOUSE_URL"
DEFAULT_URL = "duckdb:///data/kalshi.duckdb"
ACCEPTED_FORMS = (
    "postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME (also postgres://), "
    "duckdb:///relative/path.duckdb, duckdb:////absolute/path.duckdb or duckdb:///:memory:"
)

Dialect = Literal["postgres", "duckdb"]


@dataclass(frozen=True)
class WarehouseUrl:
    """A validated warehouse URL: its dialect, the connection target, and a password-free rendering."""

    dialect: Dialect
    raw: str
    redacted: str
    duckdb_path: str | None = None

    def __repr__(self) -> str:
        return f"WarehouseUrl({self.redacted!r})"

    @property
    def in_memory(self) -> bool:
        """Whether this is an in-memory DuckDB database (`duckdb:///:memory:`)."""
        return self.duckdb_path == ":memory:"


def redact_url(url: str) -> str:
    """Return the URL with any password (in the netloc or a `password=` query item) replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def resolve_url(url: str | None = None, *, source: str = "the argument") -> WarehouseUrl:
    """Validate a warehouse URL (None: the embedded default); errors name `source`, e.g. a variable."""
    chosen = (url if url is not None else DEFAULT_URL).strip()
    lowered = chosen.lower()
    if lowered.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        if lowered.startswith("postgresql+psycopg://"):
            chosen = "postgresql://" + chosen.split("://", 1)[1]
        parts = urlsplit(chosen)
        if not parts.path.strip("/") and not parts.query:
            raise WarehouseConfigError(
                f"Warehouse URL {redact_url(chosen)} names no database; accepted forms: {ACCEPTED_FORMS}"
            )
        return WarehouseUrl("postgres", chosen, redact_url(chosen))
    if lowered.startswith("duckdb:///"):
        path = chosen[len("duckdb:///") :]
        if not path:
            raise WarehouseConfigError(
                f"Warehouse URL {chosen!r} names no DuckDB file; accepted forms: {ACCEPTED_FORMS}"
            )
        if path != ":memory:":
            path = str(Path(path).expanduser())
        return WarehouseUrl("duckdb", chosen, chosen, duckdb_path=path)
    raise WarehouseConfigError(
        f"Unsupported warehouse URL {redact_url(chosen)!r} (from {source}); accepted forms: "
        f"{ACCEPTED_FORMS}"
    )
