"""Sentence vectors: the encoder over torch or ONNX Runtime (:mod:`.encoder`) and the embedder's saved versions
(:mod:`.versions`)."""
