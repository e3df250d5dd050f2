"""Data checks: one row's problems, the run over a manifest, and the report."""
