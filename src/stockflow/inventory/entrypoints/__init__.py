"""Inventory entry points: the HTTP app and the bus consumers; they translate into commands."""
