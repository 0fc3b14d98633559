"""Real services and streamapp processes, started the way an operator starts them: shared by
the test suite and the benchmarks."""
