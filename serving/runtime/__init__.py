"""Runtime: onnxruntime session, self-test, padding, batching, pooling and the in-process Encoder.

Imports no grpc and no torch; every transport and the bulk job sit on top of runtime.encoder.
"""
