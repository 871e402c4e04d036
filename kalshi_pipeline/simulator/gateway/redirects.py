"""The gateway's trailing-slash rule: `/trade-api/v2/markets/` answers 301 to the path without the slash."""

from __future__ import annotations

from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from kalshi_pipeline.simulator.paths import REST_PREFIX, through_gateway


class TrailingSlashRedirect:
    """Redirects (301) any gateway path below the API root that ends in `/`, keeping the query string."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap `app`."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"] if through_gateway(scope) else ""
        if path.endswith("/") and len(path) > len(REST_PREFIX) + 1:
            query = scope.get("query_string", b"").decode()
            target = path.rstrip("/") + (f"?{query}" if query else "")
            await RedirectResponse(target, status_code=301)(scope, receive, send)
            return
        await self.app(scope, receive, send)
