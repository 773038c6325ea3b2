"""Benchmarks that report figures: inference latency (:mod:`.latency`), its profile by
block kind (:mod:`.profile`), training throughput (:mod:`.throughput`)."""
