"""Benchmarks behind ``stockflow bench``: they measure and print, tests never assert figures."""
