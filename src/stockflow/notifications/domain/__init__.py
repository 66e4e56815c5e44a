"""The notifications domain: pure values and decisions (no I/O)."""
