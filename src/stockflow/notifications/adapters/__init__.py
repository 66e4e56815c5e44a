"""The notifications database, the HTTP sender and the resolver."""
