"""The document store (SQLite + exact/HNSW vectors + FTS5 BM25, :mod:`.store`), fusion of rankings (:mod:`.hybrid`),
the store that follows the embedder's versions (:mod:`.versioned`) and the merging of shard replies (:mod:`.replies`)."""
