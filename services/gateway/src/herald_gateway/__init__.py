"""Herald gateway service."""
