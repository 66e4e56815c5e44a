"""The inventory service: event-sourced stock per SKU, reservations (the hot path)."""
