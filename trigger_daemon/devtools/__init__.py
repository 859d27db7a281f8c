"""Local stand-ins for outside systems, used by the demo, the tests and the benchmarks."""
