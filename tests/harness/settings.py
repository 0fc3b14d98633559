"""Settings every test process runs with."""

# Timings that keep a test worker's first group join and failure detection short.
TEST_SETTINGS = {
    "TOPIC_PARTITIONS": "6",
    "WORKER_REBALANCE_TIMEOUT": "10",
    "WORKER_SESSION_TIMEOUT": "6",
    "WORKER_HEARTBEAT_INTERVAL": "1",
    "OUTBOX_RELAY_INTERVAL": "0.5",
    "OUTBOX_RELAY_DELAY": "1",
    "OUTBOX_MAX_BACKOFF": "2",
    "PUBLISH_TIMEOUT": "5",
    "REDELIVER_AFTER": "5",
    "LOG_LEVEL": "INFO",
    "WORKER_WEB_HOST": "127.0.0.1",
    "API_DRAIN_SECONDS": "0",  # test APIs stop at once; the graceful-stop test sets it
}
