"""Scoring: error rates, classification reports, confidence intervals (pure, no model)."""
