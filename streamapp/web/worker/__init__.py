"""The workers' web views: Faust's own web server, one per worker (not the FastAPI app)."""
