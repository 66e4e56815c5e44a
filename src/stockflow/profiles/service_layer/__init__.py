"""The profiles use cases and the ports they need."""
