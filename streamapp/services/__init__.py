"""Where SQL lives: one module per resource, functions named get / get_all / create."""
