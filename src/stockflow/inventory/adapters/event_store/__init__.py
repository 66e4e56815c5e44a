"""Event stores: ``memory`` (unit tests), ``sqlite`` (embedded) and ``postgres`` (distributed).

Each module is imported on its own by bootstrap, so the SQLite deployment never imports asyncpg.
"""
