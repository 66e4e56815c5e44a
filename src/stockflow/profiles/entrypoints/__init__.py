"""The profiles HTTP API."""
