"""What runs the span model: :class:`TorchQARunner` (transformers) or any ``Runner`` callable (the ONNX Runtime ones:
:class:`covidqa.models.onnx.OnnxQARunner`), and which checkpoint a reader reads with (:func:`resolve_reader_model`).

A runner is ``runner(input_ids, attention_mask, token_type_ids) -> (start_logits, end_logits)`` on int64 numpy
arrays of shape ``(batch, seq)``, returning float arrays of the same shape.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Optional, Tuple, Union

import numpy as np

if TYPE_CHECKING:
    import torch

from covidqa.models.loading import BASE_MODEL_NAME, load_qa_model
from covidqa.paths import PathLike, default_reader_dir
from covidqa.runtime.torch_gate import require_torch

logger = logging.getLogger(__name__)

BACKENDS = ('torch', 'onnx', 'onnx-int8')
Runner = Callable[[np.ndarray, np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def resolve_reader_model(model: Optional[PathLike]) -> PathLike:
    """``None`` -> the reader trained into the service home if there is one, else the reader shipped in the
    repository (checksum verified, unpacked once: :mod:`covidqa.models.shipped`), else ``'base'`` (with a warning);
    anything else as is. A damaged shipped file raises :class:`covidqa.models.shipped.ShippedModelError`."""
    if model is not None:
        return model
    reader_dir = default_reader_dir()
    if (reader_dir / 'config.json').is_file():
        return reader_dir
    from covidqa.models.shipped import has_shipped_model, shipped_model_dir

    if has_shipped_model('reader'):
        return shipped_model_dir('reader')
    logger.warning(
        'no trained reader in %s and no shipped reader: using the base all-MiniLM-L6-v2 with an UNTRAINED span head '
        '(answers are noise); train one with `make reader-pretrain reader`', reader_dir,
    )
    return BASE_MODEL_NAME


class TorchQARunner:
    """``(input_ids, attention_mask, token_type_ids) -> (start_logits, end_logits)`` with a transformers QA model.

    ``model`` is a model directory (or ``'base'``), loaded with :func:`covidqa.models.loading.load_qa_model`, or an already
    loaded ``AutoModelForQuestionAnswering`` (used as is, e.g. while training).
    """

    def __init__(self, model: Union[PathLike, 'torch.nn.Module', None] = None, num_threads: Optional[int] = None):
        require_torch("the reader's torch backend")
        import torch

        if num_threads:
            torch.set_num_threads(num_threads)
        self.model = model if isinstance(model, torch.nn.Module) else load_qa_model(model)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray):
        import torch

        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                out = self.model(
                    input_ids=torch.from_numpy(np.ascontiguousarray(input_ids, dtype=np.int64)),
                    attention_mask=torch.from_numpy(np.ascontiguousarray(attention_mask, dtype=np.int64)),
                    token_type_ids=torch.from_numpy(np.ascontiguousarray(token_type_ids, dtype=np.int64)),
                )
        finally:
            if was_training:
                self.model.train()
        return out.start_logits.float().numpy(), out.end_logits.float().numpy()
