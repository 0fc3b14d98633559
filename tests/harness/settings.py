"""Settings every test process runs with."""

from tools.stack.processes import QUICK_SETTINGS

TEST_SETTINGS = {
    **QUICK_SETTINGS,
    "PUBLISH_TIMEOUT": "5",
    "REDELIVER_AFTER": "5",
    "WORKER_WEB_HOST": "127.0.0.1",
}
