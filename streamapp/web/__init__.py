"""Where HTTP lives: the FastAPI front end (`api`) and the workers' Faust web views."""
