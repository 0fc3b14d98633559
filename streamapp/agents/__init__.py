"""Where stream processing lives: Faust agents of the workers' consumer group."""
