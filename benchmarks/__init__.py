"""The performance suite of issue 9 (see benchmarks/README.md)."""
