"""encoder.v1 over gRPC: the servicer (servicer.py) and its message conversions (convert.py)."""
