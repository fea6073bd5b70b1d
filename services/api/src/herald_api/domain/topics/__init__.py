"""The topics domain: stored topic history."""
