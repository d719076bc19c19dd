"""The two-tower recommender: synthetic data, numpy training, evaluation, ONNX export."""
