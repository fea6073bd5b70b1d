"""The operators domain: live processes, active topics, a user's sockets (role ``admin``)."""
