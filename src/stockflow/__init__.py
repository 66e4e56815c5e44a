"""stockflow: an event-sourced retail inventory system built as Python microservices."""

__version__ = "0.1.0"
