"""Deployment: ONNX export, the ONNX Runtime backend and the HTTP service."""
