"""The orders service's adapters: its SQLAlchemy tables, repository, unit of work, migrations."""
