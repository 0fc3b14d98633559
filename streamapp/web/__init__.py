"""HTTP: the REST API (FastAPI, `web.api`) and the workers' Faust views (`web.worker`)."""
