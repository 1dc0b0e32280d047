"""Brokers carry events between hub nodes; local delivery never goes through them."""
