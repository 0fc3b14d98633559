"""The dev stack (`streamapp dev`, `make run`): embedded PostgreSQL and the tansu broker, then
the API and workers under a small process supervisor. Nothing here runs in production."""
