"""The notifications service: in-app notifications and signed outgoing webhooks."""
