"""stockflow-kit: the toolkit that keeps asyncio HTTP services alive on a hostile network.

The public API lives in the subpackages:

- :mod:`stockflow_kit.resilience`: retry, circuit breaker, retry budget, bulkhead, deadlines.
- :mod:`stockflow_kit.observability`: structured logs, correlation ids, metrics, tracing.
- :mod:`stockflow_kit.http`: ASGI middleware, problem+json, the resilient HTTP client.
- :mod:`stockflow_kit.messaging`: envelopes, the bus port and its backends, outbox and inbox.
"""

__version__ = "0.1.0"
