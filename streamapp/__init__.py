"""streamapp: applications service on PostgreSQL and Kafka (Faust)."""

__version__ = "0.1.0"
