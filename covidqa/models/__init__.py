"""Model files: where they are and how they load (:mod:`.loading`), their ONNX Runtime exports (:mod:`.onnx`: the
export, the cache, the sessions and the runners in :mod:`.onnx_export`, :mod:`.onnx_cache`, :mod:`.onnx_session`,
:mod:`.onnx_runners`) and the reader shipped in the repository (:mod:`.shipped`, checksum verified before it is
unpacked)."""
