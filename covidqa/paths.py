"""The one place that decides where things live: the repository, the service home, the data root.

Every other module asks here; nothing else reads ``$COVIDQA_HOME`` or ``$COVIDQA_DATA``.

Layout of the service home (``$COVIDQA_HOME``, default ``./workspace``)::

    workspace/
      models/reader/             the reader you trained (save_pretrained format); takes the shipped one's place
      models/reader-pretrained/  stage 1 of the reader recipe (SQuAD-style data; covidqa.qa.pretrain)
      models/shipped-reader-*/   the reader shipped in the repository, unpacked (covidqa.models.shipped)
      models/embedder-distilled/ the embedder recipe's [CLS] embedder (covidqa.feedback.distill) ...
      models/embedder-contrasted/ ... after its contrastive step
      models/shipped-embedder-*/ the embedder shipped in the repository, unpacked: version 0 (covidqa.models.shipped)
      models/embedder/v0001/     embedder versions written by the feedback finetuner
      checkpoints/<run>/         resumable training checkpoints (covidqa.training.checkpoint)
      index/                     the indexer's persisted document index
      feedback/                  the append-only label store
      data/                      files the Flow's /qa/train, /qa/eval, /qa/test read (parameters {'file': ...})

The data root (``$COVIDQA_DATA``, default ``../shared/data`` beside the repository) holds COVID-QA, SQuAD and the
FAQ files, one folder each, as in this environment's ``shared/data``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, os.PathLike]

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_READER_FILE = REPO_ROOT / 'models' / 'reader' / 'covidqa-reader.fp16.safetensors'
SHIPPED_EMBEDDER_FILE = REPO_ROOT / 'models' / 'embedder' / 'covidqa-embedder.fp16.safetensors'
# deepset's COVID-19 FAQ (question, answer), under the data root: data_dir() / FAQ_FILE
FAQ_FILE = 'covid_faq_deepset/faq_covidbert.csv'


def service_home(home: Optional[PathLike] = None) -> Path:
    """The service home directory: argument, else ``$COVIDQA_HOME``, else ``./workspace``."""
    return Path(home or os.environ.get('COVIDQA_HOME') or 'workspace').resolve()


def default_reader_dir(home: Optional[PathLike] = None) -> Path:
    """Where a reader trained on this machine is saved (and served from, before the shipped one)."""
    return service_home(home) / 'models' / 'reader'


def pretrained_reader_dir(home: Optional[PathLike] = None) -> Path:
    """Where stage 1 of the reader recipe (:mod:`covidqa.qa.pretrain`) saves its reader."""
    return service_home(home) / 'models' / 'reader-pretrained'


def shipped_model_home(kind: str, digest: str, home: Optional[PathLike] = None) -> Path:
    """Where the shipped ``kind`` (``'reader'``, ``'embedder'``) with checksum ``digest`` is unpacked (a changed file
    gets a directory of its own)."""
    return service_home(home) / 'models' / f'shipped-{kind}-{digest[:12]}'


def distilled_embedder_dir(home: Optional[PathLike] = None) -> Path:
    """Where the embedder recipe (:mod:`covidqa.feedback.distill`) saves its distilled ``[CLS]`` embedder."""
    return service_home(home) / 'models' / 'embedder-distilled'


def contrasted_embedder_dir(home: Optional[PathLike] = None) -> Path:
    """Where the embedder recipe's contrastive step (:mod:`covidqa.feedback.distill`) saves its embedder."""
    return service_home(home) / 'models' / 'embedder-contrasted'


def embedder_versions_dir(home: Optional[PathLike] = None) -> Path:
    """The embedder versions written by the feedback finetuner (``v0001``, ...)."""
    return service_home(home) / 'models' / 'embedder'


def checkpoint_dir(run: str, home: Optional[PathLike] = None) -> Path:
    """The resumable checkpoints of the training run ``run``."""
    return service_home(home) / 'checkpoints' / run


def index_dir(home: Optional[PathLike] = None) -> Path:
    """The indexer's persisted document index."""
    return service_home(home) / 'index'


def feedback_dir(home: Optional[PathLike] = None) -> Path:
    """The append-only label store of the feedback finetuner."""
    return service_home(home) / 'feedback'


def qa_files_dir(home: Optional[PathLike] = None) -> Path:
    """Where the Flow's reader looks for the files named in ``/qa/train``, ``/qa/eval``, ``/qa/test`` requests."""
    return service_home(home) / 'data'


def onnx_cache_root(home: Optional[PathLike] = None) -> Path:
    """Where ONNX exports of read-only checkpoints go: ``$COVIDQA_ONNX_CACHE``, else ``<home>/onnx-cache``."""
    env = os.environ.get('COVIDQA_ONNX_CACHE')
    return Path(env).expanduser().resolve() if env else service_home(home) / 'onnx-cache'


def data_dir(arg: Optional[PathLike] = None) -> Path:
    """The data root (COVID-QA, SQuAD, FAQ files): argument, else ``$COVIDQA_DATA``, else ``../shared/data`` beside
    the repository."""
    return Path(arg or os.environ.get('COVIDQA_DATA') or REPO_ROOT.parent / 'shared' / 'data').resolve()


def data_file(relative: PathLike, root: Optional[PathLike] = None) -> Path:
    """``relative`` under the data root; raises ``FileNotFoundError`` naming the file and how to point at it."""
    path = data_dir(root) / relative
    if not path.is_file():
        raise FileNotFoundError(f'data file {path} not found: set $COVIDQA_DATA (or --data-dir) to the folder that '
                                f'holds {relative}')
    return path


__all__ = ['PathLike', 'REPO_ROOT', 'SHIPPED_READER_FILE', 'SHIPPED_EMBEDDER_FILE', 'FAQ_FILE', 'service_home', 'default_reader_dir',
           'pretrained_reader_dir', 'shipped_model_home', 'distilled_embedder_dir', 'contrasted_embedder_dir', 'embedder_versions_dir', 'checkpoint_dir', 'index_dir',
           'feedback_dir', 'qa_files_dir', 'onnx_cache_root', 'data_dir', 'data_file']
