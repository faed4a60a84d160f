"""Measuring models: speed (timing, benchmark), parameters and FLOPs, ONNX
export, the accuracy-against-speed report, and parity with timm."""
