"""What the service declares: stored tables, HTTP schemas, Kafka records."""
