"""In-memory vector indexes behind :class:`covidqa.index.store.DocumentStore`: cosine top-K over integer labels.

- :class:`ExactIndex`: a numpy matrix of unit vectors, one matmul per query batch (exact; for small collections);
- :class:`HnswIndex`: hnswlib's HNSW graph (approximate; for big ones), deletes by ``mark_deleted`` (the element
  stays in the graph as a waypoint, skipped in results), snapshots by ``save_index``/``load_index``. Slots of deleted
  elements are not reused: hnswlib's ``replace_deleted`` insert measured 3x slower than a plain one (it repairs the
  old element's neighbourhood), and an upsert of 64 must stay fast; a rebuild (restart without snapshot) compacts.

Both take vectors as given (any norm) and score by cosine similarity; labels are the store's integer labels (one per
written document version, never reused). Neither is thread-safe on its own: the store serialises writes.

Example::

    ann = make_index('hnsw', dim=384, M=16, ef_construction=100, ef_search=256)
    ann.add(np.array([1, 2]), vectors); ann.remove([1])
    labels, scores = ann.search(queries, k=10)     # (n, k') int64 / float32, best first
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Protocol, Tuple

import numpy as np

from covidqa.paths import PathLike

INDEX_KINDS = ('exact', 'hnsw')


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` (n, d) as float32 rows of norm 1 (all-zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)


class VectorIndex(Protocol):
    """What the store needs of an in-memory index."""

    kind: str
    dim: int

    def __len__(self) -> int: ...

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, labels: Iterable[int]) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]: ...


class ExactIndex:
    """Exact cosine search: unit vectors in one growing matrix; delete moves the last row into the hole."""

    kind = 'exact'

    def __init__(self, dim: int, capacity: int = 1024):
        self.dim = dim
        self._matrix: np.ndarray = np.zeros((max(1, capacity), dim), dtype=np.float32)
        self._labels: np.ndarray = np.zeros(max(1, capacity), dtype=np.int64)
        self._row: dict = {}
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) == 0:
            return
        self.remove([int(label) for label in labels if int(label) in self._row])
        need = self._n + len(labels)
        if need > len(self._labels):
            size = max(need, 2 * len(self._labels))
            self._matrix = np.concatenate([self._matrix, np.zeros((size - len(self._labels), self.dim), np.float32)])
            self._labels = np.concatenate([self._labels, np.zeros(size - len(self._labels), np.int64)])
        self._matrix[self._n:need] = unit_rows(vectors)
        self._labels[self._n:need] = labels
        for offset, label in enumerate(labels.tolist()):
            self._row[label] = self._n + offset
        self._n = need

    def remove(self, labels: Iterable[int]) -> None:
        for label in labels:
            row = self._row.pop(int(label), None)
            if row is None:
                continue
            last = self._n - 1
            if row != last:
                self._matrix[row] = self._matrix[last]
                self._labels[row] = self._labels[last]
                self._row[int(self._labels[row])] = row
            self._n = last

    def search(self, queries: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        k = min(k, self._n)
        queries = unit_rows(queries)
        if k <= 0:
            return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
        scores = queries @ self._matrix[:self._n].T
        if k < self._n:
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        else:
            top = np.tile(np.arange(self._n), (len(queries), 1))
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind='stable')
        rows = np.take_along_axis(top, order, axis=1)
        return self._labels[rows], np.take_along_axis(top_scores, order, axis=1).astype(np.float32)


class HnswIndex:
    """hnswlib HNSW graph in cosine space.

    :param M: graph degree (memory ~ ``4 * dim + 8 * M`` bytes a vector); :param ef_construction: build beam;
    :param ef_search: query beam (raised to ``k`` when smaller); :param num_threads: threads for batch inserts.
    """

    kind = 'hnsw'

    def __init__(self, dim: int, M: int = 16, ef_construction: int = 100, ef_search: int = 256,
                 num_threads: int = 1, capacity: int = 1024, path: Optional[PathLike] = None, live: int = 0):
        import hnswlib  # only needed for this kind

        self.dim, self.M, self.ef_construction, self.ef_search = dim, M, ef_construction, ef_search
        self.num_threads = max(1, num_threads)
        self._index = hnswlib.Index(space='cosine', dim=dim)
        if path is not None:
            self._index.load_index(str(path))
            self._live = live  # hnswlib does not say how many of its elements are marked deleted
        else:
            self._index.init_index(max_elements=max(16, capacity), ef_construction=ef_construction, M=M,
                                   random_seed=100)
            self._live = 0
        self._index.set_ef(ef_search)
        self._index.set_num_threads(1)

    def __len__(self) -> int:
        return self._live

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) == 0:
            return
        current = self._index.get_current_count()  # deleted elements included
        if current + len(labels) > self._index.get_max_elements():
            self._index.resize_index(max(current + len(labels), int(1.5 * self._index.get_max_elements())))
        threads = self.num_threads if len(labels) >= 32 else 1
        self._index.add_items(unit_rows(vectors), labels, num_threads=threads)
        self._live += len(labels)

    def remove(self, labels: Iterable[int]) -> None:
        for label in labels:
            try:
                self._index.mark_deleted(int(label))
            except RuntimeError:  # not in the graph or already deleted
                continue
            self._live -= 1

    def search(self, queries: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        queries = unit_rows(queries)
        k = min(k, self._live)
        while k > 0:
            self._index.set_ef(max(self.ef_search, k))
            try:
                labels, distances = self._index.knn_query(queries, k=k, num_threads=1)
                return labels.astype(np.int64), (1.0 - distances).astype(np.float32)
            except RuntimeError:  # fewer than k reachable (many deletes): ask for fewer
                k //= 2
        return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)

    def save(self, path: PathLike) -> None:
        self._index.save_index(str(path))


def make_index(kind: str, dim: int, **options) -> VectorIndex:
    """A new empty index of ``kind`` (``'exact'`` or ``'hnsw'``); ``options`` go to :class:`HnswIndex`."""
    if kind == 'exact':
        return ExactIndex(dim, capacity=options.get('capacity', 1024))
    if kind == 'hnsw':
        return HnswIndex(dim, **options)
    raise ValueError(f'index must be one of {INDEX_KINDS}, not {kind!r}')


def load_hnsw(path: Path, dim: int, live: int, **options) -> HnswIndex:
    """A :class:`HnswIndex` loaded from a snapshot written by :meth:`HnswIndex.save` that held ``live``
    undeleted vectors."""
    return HnswIndex(dim, path=path, live=live, **{k: v for k, v in options.items() if k != 'capacity'})


__all__ = ['INDEX_KINDS', 'ExactIndex', 'HnswIndex', 'VectorIndex', 'load_hnsw', 'make_index', 'unit_rows']
