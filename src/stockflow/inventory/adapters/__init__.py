"""Inventory adapters: implementations of the service layer's ports."""
