"""The run directory: its layout, its log, its records and the diagnostics read from them."""
