"""Kalshi's API gateway in front of the REST routes, as pure ASGI middleware.

Every request under `/trade-api/` passes, in order: `stats.CountRequests`, `faults.FaultInjection`,
`redirects.TrailingSlashRedirect`, `signatures.SignatureCheck` and `ratelimit.RateLimit`. Requests outside
it (`GET /_sim/health`, `GET /_sim/stats`) and WebSocket upgrades pass every one untouched.
"""
