"""Screenshots of a running Dagster UI, the way a person sees it (headless Chromium via Playwright).

Start the UI first (`make dev`), then:

    .venv/bin/python scripts/ui_screenshots.py [--url http://127.0.0.1:3000] [--out docs/screenshots]

It saves the asset graph, today's `kalshi/candlesticks` partition and the checks of its latest
materialization, `kalshi/ticks` with the stream run's latest progress report (rows so far, newest minute),
the running `live_games_sensor` with its ticks, and the runs it launched. Uses the system Chromium (/usr/bin/chromium,
`apt-get install -y chromium`); it never downloads a browser.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCATION = "kalshi_pipeline.definitions"


def shoot(page: Page, url: str, path: Path, wait_for: str | None, settle_s: float) -> None:
    """Open `url`, wait for `wait_for` text (when given) and the UI's polling to settle, then save."""
    page.goto(url, wait_until="domcontentloaded")
    if wait_for:
        page.get_by_text(wait_for, exact=False).first.wait_for(timeout=60_000)
    time.sleep(settle_s)
    page.screenshot(path=str(path), full_page=False)
    print(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument(
        "--partition",
        default=datetime.now(ZoneInfo("America/New_York")).date().isoformat(),
        help="game date whose checks to show (default: today in New York)",
    )
    parser.add_argument("--settle", type=float, default=4.0, help="seconds to let the page settle")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.url.rstrip("/")
    location = f"{base}/locations/{LOCATION}"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000}, device_scale_factor=1)
        try:
            shoot(page, f"{location}/asset-groups/kalshi", args.out / "asset_graph.png",
                  "candlesticks_raw", args.settle)  # fmt: skip
            candles = f"{base}/assets/kalshi/candlesticks"
            shoot(page, f"{candles}?view=partitions&partition={args.partition}",
                  args.out / "partition.png", "Latest materialization", args.settle)  # fmt: skip
            shoot(page, f"{candles}?view=checks", args.out / "partition_checks.png",
                  "minute_grid", args.settle)  # fmt: skip
            shoot(page, f"{base}/assets/kalshi/ticks", args.out / "stream_progress.png",
                  "newest_minute", args.settle)  # fmt: skip
            shoot(page, f"{location}/sensors/live_games_sensor", args.out / "live_sensor.png",
                  "live_games_sensor", args.settle)  # fmt: skip
            shoot(page, f"{base}/runs", args.out / "live_runs.png", "kalshi_live_job", args.settle)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
