"""HNSW snapshots of a store directory: ``ann-v<version>-s<seq>-n<live>.hnsw``, the graph of embedder ``version``
covering the changes up to ``seq`` with ``live`` vectors. Written atomically; the older snapshots of that version
are removed once a newer one is in place. Example::

    save(directory, ann, version=2, seq=1500, live=1200)   # .../ann-v2-s1500-n1200.hnsw
    listed(directory)                                      # [(2, 1500, 1200, Path(...))]
"""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import List, Protocol, Tuple

from covidqa.paths import PathLike
from covidqa.runtime.atomic import atomic_path

log = logging.getLogger(__name__)
SNAPSHOT = re.compile(r'^ann-v(\d+)-s(\d+)-n(\d+)\.hnsw$')


class HnswIndexLike(Protocol):
    def save(self, path: PathLike) -> None: ...

    def __len__(self) -> int: ...


def listed(directory: Path) -> List[Tuple[int, int, int, Path]]:
    """``(version, seq, live, path)`` of the snapshots in ``directory``, oldest first."""
    found = []
    for path in directory.iterdir():
        match = SNAPSHOT.match(path.name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), int(match.group(3)), path))
    return sorted(found)


def save(directory: Path, ann: HnswIndexLike, version: int, seq: int, live: int) -> Path:
    """Write ``ann`` as the snapshot of ``(version, seq, live)`` (kept if it exists) and remove the older ones of
    ``version``; returns its path."""
    path = directory / f'ann-v{version}-s{seq}-n{live}.hnsw'
    if path.exists():
        return path
    started = time.monotonic()
    with atomic_path(path) as tmp:
        ann.save(tmp)
    for old_version, old_seq, _, old in listed(directory):
        if old_version == version and old_seq < seq:
            old.unlink(missing_ok=True)
    log.info('snapshot %s written in %.1f s', path.name, time.monotonic() - started)
    return path


def drop_all_but(directory: Path, version: int) -> None:
    """Remove the snapshots of every other embedder version than ``version``."""
    for old_version, _, _, path in listed(directory):
        if old_version != version:
            path.unlink(missing_ok=True)
