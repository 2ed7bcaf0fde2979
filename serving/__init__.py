"""Run time: tokenizer, bundle reader, onnxruntime session, gRPC server. Never imports torch."""
