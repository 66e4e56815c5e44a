"""The notifications use cases, their ports and the webhook dispatcher."""
