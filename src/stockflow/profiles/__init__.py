"""The profiles service: one consolidated owner of a customer's identity, contact data,
addresses and preferences."""
