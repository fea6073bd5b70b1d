"""Herald bridge service."""
