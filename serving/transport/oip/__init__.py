"""The Open Inference Protocol v2 over gRPC (KServe, Triton clients): the servicer (servicer.py)
and the one model it serves, as messages (convert.py)."""
