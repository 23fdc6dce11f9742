"""The reader shipped in the repository: one compact file, verified before use.

A new machine should answer well without hours of training, so the trained reader is committed as one file,
``models/reader/covidqa-reader.fp16.safetensors`` (fp16 weights, ~45 MB; the model config and the training summary
ride in the safetensors metadata), with ``<file>.sha256`` beside it and a model card (``models/reader/MODEL_CARD.md``).

- :func:`pack_reader` turns a trained reader directory (save_pretrained format) into such a file and its checksum;
- :func:`unpack_reader` verifies the checksum and writes a normal reader directory (fp32 weights, the packaged
  MiniLM tokenizer, which the reader was trained with);
- :func:`shipped_reader_dir` is what the service uses: the shipped file unpacked once into
  ``$COVIDQA_HOME/models/shipped-reader-<checksum>`` (a changed file gets a directory of its own).

A damaged or incomplete file raises :class:`ShippedReaderError` naming the file and what is wrong; it never falls
back to an untrained reader.

Example::

    pack_reader('workspace/models/reader', SHIPPED_READER_FILE)   # make reader-ship
    model_dir = shipped_reader_dir()                               # verified, unpacked once
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from covidqa.jobs import UNPACK_READER
from covidqa.models.loading import atomic_save_pretrained, load_tokenizer
from covidqa.paths import SHIPPED_READER_FILE, PathLike, shipped_reader_home
from covidqa.runtime.atomic import atomic_path, atomic_write_text

FORMAT = 'covidqa-reader/1'
MAX_SHIPPED_BYTES = 50 * 1024 * 1024


class ShippedReaderError(RuntimeError):
    """The shipped reader file is missing, damaged or not a reader; the message names the file and the fix."""


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
    """The checksum recorded beside ``path``; raises :class:`ShippedReaderError` when it is missing or malformed."""
    record = checksum_file(path)
    if not record.is_file():
        raise ShippedReaderError(f'no checksum for {path}: expected {record} (restore both files from git, or '
                                 f'pack a reader again with `make reader-ship`)')
    text = record.read_text().split()
    if not text or len(text[0]) != 64 or any(c not in '0123456789abcdef' for c in text[0]):
        raise ShippedReaderError(f'{record} does not hold a sha256 checksum')
    return text[0]


def verify(path: PathLike) -> str:
    """Check ``path`` against its recorded checksum; returns the checksum or raises :class:`ShippedReaderError`."""
    path = Path(path)
    if not path.is_file():
        raise ShippedReaderError(f'shipped reader {path} not found (restore it from git with `git checkout -- '
                                 f'{path.name}`, or train one: `make reader-pretrain reader`)')
    expected = expected_sha256(path)
    actual = sha256_of(path)
    if actual != expected:
        raise ShippedReaderError(
            f'shipped reader {path} is damaged: sha256 {actual} does not match {expected} recorded in '
            f'{checksum_file(path).name} (a partial download or git-lfs pointer?); restore it from git or train one '
            f'with `make reader-pretrain reader`')
    return actual


def pack_reader(model_dir: PathLike, target: PathLike = SHIPPED_READER_FILE,
                meta: Optional[Mapping[str, Any]] = None) -> str:
    """Write the reader in ``model_dir`` as one fp16 safetensors file ``target`` and its checksum file; returns
    the sha256. ``meta`` (JSON-able) is stored in the file's metadata next to the model config."""
    import torch
    from safetensors.torch import save_file

    from covidqa.models.loading import load_qa_model

    model = load_qa_model(model_dir)
    tensors = {name: (t.detach().to(torch.float16) if t.is_floating_point() else t.detach()).contiguous()
               for name, t in model.state_dict().items()}
    metadata = {'format': FORMAT, 'config': model.config.to_json_string(use_diff=False),
                'meta': json.dumps(dict(meta or {}), default=str)}
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        size = tmp.stat().st_size
        if size > MAX_SHIPPED_BYTES:
            raise ShippedReaderError(f'packed reader is {size / 2**20:.1f} MiB, over the {MAX_SHIPPED_BYTES >> 20} '
                                     f'MiB limit for a committed file')
        digest = sha256_of(tmp)
    atomic_write_text(checksum_file(target), f'{digest}  {target.name}\n')
    return digest


def read_metadata(path: PathLike = SHIPPED_READER_FILE) -> Dict[str, Any]:
    """The metadata of a packed reader: ``format``, ``config`` (dict) and ``meta`` (dict)."""
    from safetensors import safe_open

    with safe_open(str(path), framework='pt') as handle:
        raw = handle.metadata() or {}
    if raw.get('format') != FORMAT:
        raise ShippedReaderError(f'{path} is not a packed reader (format {raw.get("format")!r}, expected {FORMAT!r})')
    return {'format': raw['format'], 'config': json.loads(raw['config']), 'meta': json.loads(raw.get('meta', '{}'))}


def unpack_reader(path: PathLike, target: PathLike) -> Path:
    """Verify ``path`` and write it to ``target`` as a reader directory (save_pretrained format, fp32)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForQuestionAnswering

    verify(path)
    info = read_metadata(path)
    config = dict(info['config'])
    config_class = AutoConfig.for_model(config.pop('model_type'))
    model = AutoModelForQuestionAnswering.from_config(config_class.from_dict(config))
    state = {k: (v.to(torch.float32) if v.is_floating_point() else v) for k, v in load_file(str(path)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith('position_ids')]
    if missing or unexpected:
        raise ShippedReaderError(f'{path} does not fit its config: missing {missing[:5]}, unexpected {unexpected[:5]}')
    model.eval()
    meta = json.dumps({'unpacked_from': str(path), **info['meta']}, indent=2, default=str)
    return atomic_save_pretrained(model, load_tokenizer('base'), target, {'reader_training.json': meta})


def shipped_reader_dir(home: Optional[PathLike] = None, path: Optional[PathLike] = None) -> Path:
    """The shipped reader (``path``, default :data:`SHIPPED_READER_FILE`) as a model directory, unpacked (after the
    checksum check) on first use into ``$COVIDQA_HOME/models/shipped-reader-<first 12 hex of the checksum>``."""
    path = Path(path or SHIPPED_READER_FILE)
    if not path.is_file():
        verify(path)  # raises, naming the missing file
    digest = expected_sha256(path)
    target = shipped_reader_home(digest, home)
    if not (target / 'config.json').is_file():
        from covidqa.runtime.child import with_torch

        # torch builds the model: in a child process when this one serves without torch (covidqa.runtime.torch_gate)
        with_torch(UNPACK_READER, {'path': str(path), 'target': str(target)})
    return target


def unpack_reader_paths(path: str, target: str) -> str:
    """:func:`unpack_reader` with JSON-able arguments and result (for :func:`covidqa.runtime.child.with_torch`)."""
    return str(unpack_reader(path, target))


def has_shipped_reader() -> bool:
    """True when the repository holds a shipped reader: its file or its checksum (present, not yet verified: see
    :func:`verify`). A checksum without its file counts, so that a lost file is an error naming it, not a silent
    untrained reader."""
    return SHIPPED_READER_FILE.is_file() or checksum_file(SHIPPED_READER_FILE).is_file()


__all__ = ['SHIPPED_READER_FILE', 'ShippedReaderError', 'pack_reader', 'unpack_reader', 'shipped_reader_dir',
           'verify', 'read_metadata', 'has_shipped_reader']
