"""How the notifications service is driven: its HTTP API and its bus consumers."""
