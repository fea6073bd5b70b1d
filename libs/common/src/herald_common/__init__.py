"""Herald's shared library: wire types, topic grammar, configuration, tokens, errors.

Nothing in here runs on its own; services import what they need.
"""
