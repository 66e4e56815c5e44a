"""The orders service's use cases, run in one unit of work each."""
