"""Herald api service."""
