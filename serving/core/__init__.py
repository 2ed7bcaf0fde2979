"""Core: the bundle contract and manifest schema, tokenizer, vocabulary, enums, domain errors.

Imports none of torch, grpc or onnxruntime: export, the runtime and every transport share it.
"""
