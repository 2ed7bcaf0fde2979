"""Transports: thin layers that turn a wire protocol into calls on the runtime's Encoder.

encoder.v1 gRPC lives here (servicer, wire, app); the next protocols sit beside it and share the
serving state, the error map (status.py), the configuration and the metrics.
"""
