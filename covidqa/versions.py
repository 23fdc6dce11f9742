"""Versioned embedder checkpoints shared by the finetuner (writes), the indexer and the embedder (read).

Layout under ``root`` (default ``$COVIDQA_HOME/models/embedder``)::

    v0001/ v0002/ ...   save_pretrained directories, each written atomically
    TARGET              the version the service should use (set by training or rollback)
    ACTIVE              the version the index currently holds (set by the indexer once re-embedding is done)

Version 0 is the packaged base model and has no directory. The protocol keeps queries and stored documents on one
model version: the finetuner only ever moves ``TARGET``; the indexer re-embeds every stored document with ``TARGET``
and then moves ``ACTIVE``; the embedder embeds with ``ACTIVE``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List, Optional

from covidqa.atomic import atomic_write_text
from covidqa.models import BASE_MODEL_NAME, atomic_save_pretrained
from covidqa.paths import PathLike, embedder_versions_dir

_VERSION_DIR = re.compile(r'^v(\d{4,})$')



class ModelVersions:
    def __init__(self, root: Optional[PathLike] = None, base_model: Optional[PathLike] = None):
        self.root = Path(root) if root else embedder_versions_dir()
        self.base_model = base_model or BASE_MODEL_NAME

    def versions(self) -> List[int]:
        """All available versions, 0 (the base model) included, ascending."""
        found = [0]
        if self.root.is_dir():
            for child in self.root.iterdir():
                m = _VERSION_DIR.match(child.name)
                if m and (child / 'config.json').is_file():
                    found.append(int(m.group(1)))
        return sorted(found)

    def model_path(self, version: int):
        """What to hand to :mod:`covidqa.models` for ``version``."""
        if version == 0:
            return self.base_model
        path = self.root / f'v{version:04d}'
        if not (path / 'config.json').is_file():
            raise KeyError(f'embedder version {version} does not exist (available: {self.versions()})')
        return path

    def save_new(self, model, tokenizer, meta: Optional[dict] = None) -> int:
        """Save a new version atomically; returns its number (does not move TARGET)."""
        version = self.versions()[-1] + 1
        atomic_save_pretrained(
            model, tokenizer, self.root / f'v{version:04d}', {'version.json': json.dumps({'version': version, **(meta or {})})}
        )
        return version

    def meta(self, version: int) -> dict:
        if version == 0:
            return {'version': 0, 'base': str(self.base_model)}
        path = self.root / f'v{version:04d}' / 'version.json'
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
