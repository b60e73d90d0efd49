"""Commands that read a run directory: inspect, dream, diagnose, temperatures (not stages of the pipeline)."""
