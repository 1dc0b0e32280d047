"""Transports: the only code that awaits the network."""
