"""Inventory use cases and the ports (protocols) they depend on."""
