"""The throughput benchmark: `python -m bench.run` (see bench/RESULTS.md)."""
