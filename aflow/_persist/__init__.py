"""Persistence: results (`aflow.results`), the run history (`aflow.history`) and stable hashing for cache keys."""
