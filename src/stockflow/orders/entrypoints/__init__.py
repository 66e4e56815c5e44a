"""How the orders service is driven: its HTTP API and its bus consumer."""
