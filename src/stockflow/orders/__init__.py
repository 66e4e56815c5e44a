"""The orders service: order lifecycle and the reservation saga with the inventory, over the bus."""
