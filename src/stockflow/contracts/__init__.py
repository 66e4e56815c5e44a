"""The published language of stockflow: event data schemas and HTTP DTOs, data only.

One module per producing service (``inventory``, …). Services translate their private domain
events to and from these structs at their boundary, so only these need a deprecation path.
"""
