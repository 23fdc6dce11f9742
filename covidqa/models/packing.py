"""Packing a trained model into the one committed file of :mod:`covidqa.models.shipped`, and unpacking it.

- :func:`pack_model`: a ``kind`` model directory (save_pretrained format) -> fp16 safetensors (the config and
  ``meta`` in its metadata) + ``<file>.sha256``; refuses a file over 50 MiB;
- :func:`unpack_model`: verified file -> model directory (fp32 weights, the packaged MiniLM tokenizer; the embedder
  with a ``version.json`` saying ``pooling: cls``). The service does not call it directly:
  :func:`covidqa.models.shipped.shipped_model_dir` runs it (in a child process where torch is blocked) through the
  job :data:`covidqa.jobs.UNPACK_MODEL`.

Example::

    pack_model('workspace/models/reader-no-answer', kind='reader')   # make reader-ship
    unpack_model(SHIPPED_EMBEDDER_FILE, '/tmp/embedder', kind='embedder')
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from covidqa.models.loading import atomic_save_pretrained, load_tokenizer
from covidqa.models.shipped import (
    MAX_SHIPPED_BYTES,
    ShippedModelError,
    checksum_file,
    kind_of,
    read_metadata,
    sha256_of,
    verify,
)
from covidqa.paths import PathLike
from covidqa.runtime.atomic import atomic_path, atomic_write_text


def pack_model(model_dir: PathLike, target: Optional[PathLike] = None, meta: Optional[Mapping[str, Any]] = None,
               kind: str = 'reader') -> str:
    """Write the ``kind`` model in ``model_dir`` as one fp16 safetensors file ``target`` (default the kind's committed
    file) and its checksum file; returns the sha256. ``meta`` (JSON-able) is stored in the file's metadata next to
    the model config. Raises :class:`ShippedModelError` when the file would be over 50 MiB."""
    import torch
    from safetensors.torch import save_file

    from covidqa.models.loading import load_encoder, load_qa_model

    spec = kind_of(kind)
    model = load_qa_model(model_dir) if spec.name == 'reader' else load_encoder(model_dir)
    tensors = {name: (t.detach().to(torch.float16) if t.is_floating_point() else t.detach()).contiguous()
               for name, t in model.state_dict().items()}
    metadata = {'format': spec.format, 'config': model.config.to_json_string(use_diff=False),
                'meta': json.dumps(dict(meta or {}), default=str)}
    target = Path(target or spec.file)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        size = tmp.stat().st_size
        if size > MAX_SHIPPED_BYTES:
            raise ShippedModelError(f'packed {spec.name} is {size / 2**20:.1f} MiB, over the '
                                    f'{MAX_SHIPPED_BYTES >> 20} MiB limit for a committed file')
        digest = sha256_of(tmp)
    atomic_write_text(checksum_file(target), f'{digest}  {target.name}\n')
    return digest


def unpack_model(path: PathLike, target: PathLike, kind: str = 'reader') -> Path:
    """Verify ``path`` and write it to ``target`` as a ``kind`` model directory (save_pretrained format, fp32)."""
    import torch
    import transformers
    from safetensors.torch import load_file
    from transformers import AutoConfig

    spec = kind_of(kind)
    verify(path, kind)
    info = read_metadata(path, kind)
    config = dict(info['config'])
    config_class = AutoConfig.for_model(config.pop('model_type'))
    model = getattr(transformers, spec.auto_class).from_config(config_class.from_dict(config))
    state = {k: (v.to(torch.float32) if v.is_floating_point() else v) for k, v in load_file(str(path)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith('position_ids')]
    if missing or unexpected:
        raise ShippedModelError(f'{path} does not fit its config: missing {missing[:5]}, unexpected {unexpected[:5]}')
    model.eval()
    extra: Dict[str, Any] = {'unpacked_from': str(path), **info['meta']}
    if spec.name == 'embedder':
        extra.update(version=0, pooling='cls')  # covidqa.embedding.versions reads how it embeds from here
    return atomic_save_pretrained(model, load_tokenizer('base'), target,
                                  {spec.meta_file: json.dumps(extra, indent=2, default=str)})


def unpack_model_paths(path: str, target: str, kind: str = 'reader') -> str:
    """:func:`unpack_model` with JSON-able arguments and result (for :func:`covidqa.runtime.child.with_torch`)."""
    return str(unpack_model(path, target, kind))


__all__ = ['pack_model', 'unpack_model', 'unpack_model_paths']
