"""The api's REST domains, each with controllers, services, schemas and dependencies."""
