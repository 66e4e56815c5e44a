"""The order, as a pure state machine (no I/O, no framework)."""
