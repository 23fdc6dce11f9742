"""Versioned embedder checkpoints shared by the finetuner (writes), the indexer and the embedder (read).

Layout under ``root`` (default ``$COVIDQA_HOME/models/embedder``)::

    v0001/ v0002/ ...   save_pretrained directories, each written atomically
    TARGET              the version the service should use (set by training or rollback)
    ACTIVE              the version the index currently holds (set by the indexer once re-embedding is done)

Version 0 is the shipped ``[CLS]`` embedder (``'shipped-embedder'``, :mod:`covidqa.models.loading`; the packaged
all-MiniLM-L6-v2 stays reachable as ``base_model='base'``) and has no directory here. The protocol keeps queries and stored documents on one
model version: the finetuner only ever moves ``TARGET``; the indexer re-embeds every stored document with ``TARGET``
and then moves ``ACTIVE``; the embedder embeds with ``ACTIVE``.

Each version directory holds ``version.json``: its number, the training summary and the ``pooling`` (``'cls'`` or
``'mean'``) it was trained with, which is how it must embed (:func:`saved_pooling`; :class:`covidqa.embedding.encoder.Embedder`
uses it and refuses another). Version 0's is its model's: ``cls`` for the shipped embedder (written when it is
unpacked), none for the base model, which embeds with the configured pooling.

Example::

    versions = ModelVersions(tmp_dir)
    v = versions.save_new(model, tokenizer, {'note': 'test'}, pooling='mean')   # -> 1
    versions.pooling(v)                                                         # 'mean'
    saved_pooling(versions.model_path(v))                                       # 'mean'
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List, Optional

from covidqa.embedding.pooling import check_pooling
from covidqa.models.loading import (
    BASE_MODEL_NAME,
    DEFAULT_EMBEDDER,
    SHIPPED_EMBEDDER_NAME,
    atomic_save_pretrained,
    resolve_model_path,
)
from covidqa.paths import PathLike, embedder_versions_dir
from covidqa.runtime.atomic import atomic_write_text

_VERSION_DIR = re.compile(r'^v(\d{4,})$')
VERSION_FILE = 'version.json'


def saved_pooling(model: Optional[PathLike]) -> Optional[str]:
    """The pooling saved with the embedder version in directory ``model``, or with the shipped embedder
    (``'shipped-embedder'``: ``'cls'``); ``None``: not a version directory, e.g. the base model, or a version saved
    before the pooling was recorded and without a training config.

    Reads ``<model>/version.json``: its ``pooling``, else the ``pooling`` of its training ``config`` (what the
    finetuner wrote before). Raises ``ValueError`` naming the file when it is unreadable.
    Example: ``saved_pooling('workspace/models/embedder/v0002')`` -> ``'cls'``.
    """
    if model is None or str(model) == BASE_MODEL_NAME:
        return None
    if str(model) == SHIPPED_EMBEDDER_NAME:
        model = resolve_model_path(model)
    path = Path(model) / VERSION_FILE
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f'cannot read the embedder version file {path}: {exc}') from exc
    if not isinstance(meta, dict):
        raise ValueError(f'the embedder version file {path} does not hold a JSON object')
    pooling = meta.get('pooling')
    if pooling is None and isinstance(meta.get('config'), dict):
        pooling = meta['config'].get('pooling')
    return pooling



class ModelVersions:
    """The embedder's versions under ``root`` (default :func:`covidqa.paths.embedder_versions_dir`); version 0 is
    ``base_model`` (default :data:`covidqa.models.loading.DEFAULT_EMBEDDER`, the shipped ``[CLS]`` embedder)."""

    def __init__(self, root: Optional[PathLike] = None, base_model: Optional[PathLike] = None):
        self.root = Path(root) if root else embedder_versions_dir()
        self.base_model = base_model or DEFAULT_EMBEDDER

    def versions(self) -> List[int]:
        """All available versions, 0 (``base_model``) included, ascending."""
        found = [0]
        if self.root.is_dir():
            for child in self.root.iterdir():
                m = _VERSION_DIR.match(child.name)
                if m and (child / 'config.json').is_file():
                    found.append(int(m.group(1)))
        return sorted(found)

    def model_path(self, version: int):
        """What to hand to :mod:`covidqa.models.loading` for ``version``."""
        if version == 0:
            return self.base_model
        path = self.root / f'v{version:04d}'
        if not (path / 'config.json').is_file():
            raise KeyError(f'embedder version {version} does not exist (available: {self.versions()})')
        return path

    def save_new(self, model, tokenizer, meta: Optional[dict] = None, pooling: str = 'cls') -> int:
        """Save a new version atomically; returns its number (does not move TARGET). ``pooling``: how the model
        was trained to pool (``'cls'`` or ``'mean'``), saved in ``version.json`` so that it embeds that way."""
        check_pooling(pooling)
        meta = dict(meta or {})
        if meta.get('pooling', pooling) != pooling:
            raise ValueError(f"meta says pooling={meta['pooling']!r} but pooling={pooling!r} was given")
        version = self.versions()[-1] + 1
        info = {'version': version, **meta, 'pooling': pooling}
        atomic_save_pretrained(model, tokenizer, self.root / f'v{version:04d}', {VERSION_FILE: json.dumps(info)})
        return version

    def pooling(self, version: int) -> Optional[str]:
        """The pooling saved with ``version`` (:func:`saved_pooling`): ``'cls'`` for the shipped embedder, ``None``
        when version 0 is the base model (it embeds with the configured pooling). Raises ``KeyError`` for unknown
        versions."""
        return saved_pooling(self.model_path(version))

    def meta(self, version: int) -> dict:
        if version == 0:
            return {'version': 0, 'base': str(self.base_model)}
        path = self.root / f'v{version:04d}' / VERSION_FILE
        return json.loads(path.read_text()) if path.is_file() else {'version': version}

    def _read(self, name: str) -> int:
        path = self.root / name
        try:
            return int(path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return 0

    def target(self) -> int:
        return self._read('TARGET')

    def active(self) -> int:
        return self._read('ACTIVE')

    def set_target(self, version: int) -> None:
        self.model_path(version)  # raises KeyError for unknown versions
        atomic_write_text(self.root / 'TARGET', str(version))

    def set_active(self, version: int) -> None:
        self.model_path(version)
        atomic_write_text(self.root / 'ACTIVE', str(version))
