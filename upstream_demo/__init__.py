"""A stand-in for the service behind the gateway; it knows nothing of tokens."""
