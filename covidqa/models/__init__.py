"""Model files: where they are and how they load (:mod:`.loading`), their ONNX Runtime exports (:mod:`.onnx`) and the
reader shipped in the repository (:mod:`.shipped`, checksum verified before it is unpacked)."""
