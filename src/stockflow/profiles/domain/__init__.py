"""The profile and its rules, as values (no I/O)."""
