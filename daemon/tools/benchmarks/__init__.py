"""Benchmarks that need the daemon itself (`defectd bench pipeline`)."""
