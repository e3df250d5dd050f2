"""Models: encoder families, building a model, classification heads, multi-task models."""
