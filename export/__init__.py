"""ifrt.export: ONNX (fp32/fp16), TensorRT engines and a Triton model repository (extra `ifrt[export]`)."""
