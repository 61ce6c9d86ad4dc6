"""What a run needs on both sides of the engine: run context, loggers, the clock, shielded calls, run resources."""
