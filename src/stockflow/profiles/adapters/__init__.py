"""The profiles database: SQLAlchemy tables, repository, unit of work and migrations."""
