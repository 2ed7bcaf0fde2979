"""Runtime: the Encoder (encoder.py, over sync_encoder.py) with its values (types.py), session,
self-test, admission, padding and delivery, batching, pooling, resumable state and documents.

Imports no grpc and no torch; every transport and the bulk job sit on top of runtime.encoder.
"""
