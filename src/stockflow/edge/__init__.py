"""edge: the only public entry of stockflow (JWT auth, per-client rate limits, composition of
the internal services behind breakers, the degraded ``GET /me``); see docs/edge.md."""
