"""`kalshi-pipeline query`: every query the README shows runs as written on both warehouses.

The DuckDB file is named `kalshi.duckdb`, like the demo's, because that name collides with the schema
`kalshi` in a plain `duckdb` session; the README's `ATTACH ... AS wh` form for the shell is checked too.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from kalshi_pipeline.cli import main
from kalshi_pipeline.query import is_read_query
from kalshi_pipeline.warehouse import open_warehouse

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_queries() -> list[str]:
    """The SQL of every `kalshi-pipeline query "..."` line in the README."""
    return re.findall(r'kalshi-pipeline query "([^"]+)"', README.read_text())


def _store(url: str) -> None:
    """Create the schema and store two markets with a few candles."""
    wh = open_warehouse(url)
    try:
        wh.ensure_schema()
        wh.execute(
            "INSERT INTO kalshi.markets (ticker, event_ticker, series_ticker, game_date) "
            "VALUES ('KXNBAGAME-26JAN09BOSNYK-BOS', 'KXNBAGAME-26JAN09BOSNYK', 'KXNBAGAME', "
            "DATE '2026-01-09'), ('KXNBAGAME-26JAN09BOSNYK-NYK', 'KXNBAGAME-26JAN09BOSNYK', "
            "'KXNBAGAME', DATE '2026-01-09')"
        )
        for minute in range(3):
            wh.execute(
                "INSERT INTO kalshi.candlesticks (ticker, event_ticker, series_ticker, game_date, "
                "period_interval, end_period_ts) VALUES ('KXNBAGAME-26JAN09BOSNYK-BOS', "
                "'KXNBAGAME-26JAN09BOSNYK', 'KXNBAGAME', DATE '2026-01-09', 1, "
                f"TIMESTAMPTZ '2026-01-10 00:0{minute}:00+00')"
            )
    finally:
        wh.close()


def test_the_readme_shows_read_queries() -> None:
    queries = readme_queries()
    assert len(queries) >= 3
    assert all(is_read_query(q) for q in queries)
    assert not is_read_query("DELETE FROM kalshi.markets")
    assert not is_read_query("SELECT 1; DROP TABLE kalshi.markets")


@pytest.mark.integration  # Postgres for one of the two warehouses
@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
def test_every_readme_query_runs_on_both_warehouses(
    dialect: str, tmp_path: Path, fresh_pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"duckdb:///{tmp_path}/kalshi.duckdb" if dialect == "duckdb" else fresh_pg_url
    _store(url)
    outputs = []
    for sql in readme_queries():
        code = main(["query", sql, "--warehouse-url", url, "--csv"])
        captured = capsys.readouterr()
        assert code == 0, f"{sql}: {captured.err}"
        outputs.append(captured.out)
    assert outputs[0].splitlines() == ["markets", "2"]
    assert outputs[1].splitlines() == ["game_date,games", "2026-01-09,1"]
    assert (
        outputs[2].splitlines()[1].startswith("KXNBAGAME-26JAN09BOSNYK-BOS,3,2026-01-10 00:02:00")
    )


def test_the_readme_attach_form_works_in_a_plain_duckdb_session(tmp_path: Path) -> None:
    path = tmp_path / "kalshi.duckdb"
    _store(f"duckdb:///{path}")
    # Opened directly (as `duckdb data/kalshi.duckdb` does), the file's catalog is named `kalshi` too.
    direct = duckdb.connect(str(path), read_only=True)
    try:
        with pytest.raises(duckdb.BinderException, match="Ambiguous"):
            direct.execute("SELECT count(*) FROM kalshi.markets").fetchall()
    finally:
        direct.close()
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{path}' AS wh (READ_ONLY)")
        assert con.execute("SELECT count(*) FROM wh.kalshi.markets").fetchall() == [(2,)]
        con.execute("DETACH wh")
    finally:
        con.close()


def test_query_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere" / "x.duckdb"
    assert main(["query", "SELECT 1", "--warehouse-url", f"duckdb:///{missing}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no warehouse file {missing}" in err
    assert not missing.exists()  # a read never creates a warehouse file
    assert main(["query", "DROP TABLE kalshi.markets"]) == 2
    assert "only one read statement" in capsys.readouterr().err
    _store(f"duckdb:///{tmp_path}/w.duckdb")
    assert (
        main(
            [
                "query",
                "SELECT nope FROM kalshi.markets",
                "--warehouse-url",
                f"duckdb:///{tmp_path}/w.duckdb",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope" in err


def test_a_frame_prints_as_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _store(f"duckdb:///{tmp_path}/w.duckdb")
    url = f"duckdb:///{tmp_path}/w.duckdb"
    assert (
        main(["query", "SELECT ticker FROM kalshi.markets ORDER BY ticker", "--warehouse-url", url])
        == 0
    )
    out = capsys.readouterr().out
    assert out.split() == ["ticker", "KXNBAGAME-26JAN09BOSNYK-BOS", "KXNBAGAME-26JAN09BOSNYK-NYK"]
