"""Build time: vocabulary, PyTorch model, ONNX export, verification and the bundle writer."""
