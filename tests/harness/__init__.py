"""Real services for the test suite: Apache Kafka from Maven Central, streamapp processes."""
