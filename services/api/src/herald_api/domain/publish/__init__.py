"""The publish domain."""
