"""The models shipped in the repository: one compact file each, verified before use.

A new machine should answer well without hours of training, so the trained reader and the ``[CLS]`` embedder are
committed as one file each (fp16 weights, ~45 MB; the model config and the training summary ride in the safetensors
metadata), with ``<file>.sha256`` beside it and a model card in the same folder:

- ``reader``: ``models/reader/covidqa-reader.fp16.safetensors`` (a span reader, ``AutoModelForQuestionAnswering``);
- ``embedder``: ``models/embedder/covidqa-embedder.fp16.safetensors`` (a BERT encoder, ``AutoModel``, that embeds with
  its ``[CLS]`` vector; the service's embedder version 0, :mod:`covidqa.embedding.versions`).

Per kind (:data:`KINDS`, ``'reader'`` or ``'embedder'``):

- :func:`covidqa.models.packing.pack_model` turns a trained model directory (save_pretrained format) into such a
  file and its checksum;
- :func:`covidqa.models.packing.unpack_model` verifies the checksum and writes a normal model directory (fp32 weights, the packaged
  MiniLM tokenizer, which both were trained with; the embedder with a ``version.json`` saying ``pooling: cls``);
- :func:`shipped_model_dir` is what the service uses: the shipped file unpacked once (under a file lock: several
  Executors may ask at once) into ``$COVIDQA_HOME/models/shipped-<kind>-<checksum>`` (a changed file gets a
  directory of its own).

A damaged or incomplete file raises :class:`ShippedModelError` naming the file and what is wrong; it never falls
back to an untrained model.

Example::

    verify(SHIPPED_READER_FILE, 'reader')                              # the checksum, or ShippedModelError
    shipped_model_dir('embedder')                                      # verified, unpacked once
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from covidqa.jobs import UNPACK_MODEL
from covidqa.paths import SHIPPED_EMBEDDER_FILE, SHIPPED_READER_FILE, PathLike, shipped_model_home

MAX_SHIPPED_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class ShippedKind:
    """One kind of shipped model: its committed ``file``, the ``format`` tag in its metadata, the transformers
    ``auto_class`` that builds it, the file written beside it when unpacked, and how to get one again."""

    name: str
    file: Path
    format: str
    auto_class: str
    meta_file: str
    remedy: str


KINDS: Dict[str, ShippedKind] = {
    'reader': ShippedKind('reader', SHIPPED_READER_FILE, 'covidqa-reader/1', 'AutoModelForQuestionAnswering',
                          'reader_training.json', 'train one with `make reader-pretrain reader`'),
    'embedder': ShippedKind('embedder', SHIPPED_EMBEDDER_FILE, 'covidqa-embedder/1', 'AutoModel', 'version.json',
                            'train one with `make embedder`'),
}


def kind_of(kind: str) -> ShippedKind:
    """The :class:`ShippedKind` named ``kind``; ``ValueError`` naming the kinds for any other name."""
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f'no shipped model kind {kind!r}; the kinds are {sorted(KINDS)}') from None


class ShippedModelError(RuntimeError):
    """A shipped model file is missing, damaged or not of its kind; the message names the file and the fix."""


def checksum_file(path: PathLike) -> Path:
    """Where the sha256 of ``path`` is kept: ``<path>.sha256`` (``sha256sum`` format: ``<hex>  <name>``)."""
    path = Path(path)
    return path.with_name(path.name + '.sha256')


def sha256_of(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def expected_sha256(path: PathLike) -> str:
    """The checksum recorded beside ``path``; raises :class:`ShippedModelError` when it is missing or malformed."""
    record = checksum_file(path)
    if not record.is_file():
        raise ShippedModelError(f'no checksum for {path}: expected {record} (restore both files from git, or '
                                f'pack the model again with `make reader-ship` / `make embedder-ship`)')
    text = record.read_text().split()
    if not text or len(text[0]) != 64 or any(c not in '0123456789abcdef' for c in text[0]):
        raise ShippedModelError(f'{record} does not hold a sha256 checksum')
    return text[0]


def verify(path: PathLike, kind: str = 'reader') -> str:
    """Check ``path`` (a shipped ``kind``) against its recorded checksum; returns the checksum or raises
    :class:`ShippedModelError`."""
    path, spec = Path(path), kind_of(kind)
    if not path.is_file():
        raise ShippedModelError(f'shipped {spec.name} {path} not found (restore it from git with `git checkout -- '
                                f'{path.name}`, or {spec.remedy})')
    expected = expected_sha256(path)
    actual = sha256_of(path)
    if actual != expected:
        raise ShippedModelError(
            f'shipped {spec.name} {path} is damaged: sha256 {actual} does not match {expected} recorded in '
            f'{checksum_file(path).name} (a partial download or git-lfs pointer?); restore it from git or '
            f'{spec.remedy}')
    return actual


def read_metadata(path: PathLike, kind: str = 'reader') -> Dict[str, Any]:
    """The metadata of a packed ``kind`` model: ``format``, ``config`` (dict) and ``meta`` (dict)."""
    from safetensors import safe_open

    spec = kind_of(kind)
    with safe_open(str(path), framework='pt') as handle:
        raw = handle.metadata() or {}
    if raw.get('format') != spec.format:
        raise ShippedModelError(f'{path} is not a packed {spec.name} (format {raw.get("format")!r}, expected '
                                f'{spec.format!r})')
    return {'format': raw['format'], 'config': json.loads(raw['config']), 'meta': json.loads(raw.get('meta', '{}'))}


def shipped_model_dir(kind: str = 'reader', home: Optional[PathLike] = None, path: Optional[PathLike] = None) -> Path:
    """The shipped ``kind`` model (``path``, default the kind's committed file) as a model directory, unpacked (after
    the checksum check) on first use into ``$COVIDQA_HOME/models/shipped-<kind>-<first 12 hex of the checksum>``."""
    from covidqa.runtime.locks import file_lock

    spec = kind_of(kind)
    path = Path(path or spec.file)
    if not path.is_file():
        verify(path, kind)  # raises, naming the missing file
    digest = expected_sha256(path)
    target = shipped_model_home(spec.name, digest, home)
    if not (target / 'config.json').is_file():
        from covidqa.runtime.child import with_torch

        with file_lock(target.parent / f'.{target.name}.lock'):  # Executors starting together unpack it once
            if not (target / 'config.json').is_file():
                # torch builds the model: in a child process when this one serves without torch (torch_gate)
                with_torch(UNPACK_MODEL, {'path': str(path), 'target': str(target), 'kind': spec.name})
    return target


def has_shipped_model(kind: str = 'reader') -> bool:
    """True when the repository holds a shipped ``kind``: its file or its checksum (present, not yet verified: see
    :func:`verify`). A checksum without its file counts, so that a lost file is an error naming it, not a silent
    untrained model."""
    file = kind_of(kind).file
    return file.is_file() or checksum_file(file).is_file()


__all__ = ['KINDS', 'MAX_SHIPPED_BYTES', 'SHIPPED_EMBEDDER_FILE', 'SHIPPED_READER_FILE', 'ShippedKind',
           'ShippedModelError', 'checksum_file', 'expected_sha256', 'has_shipped_model', 'kind_of', 'read_metadata',
           'shipped_model_dir', 'verify']
