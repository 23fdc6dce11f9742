"""Auxiliary "is this token inside the answer?" loss for training the span reader.

The span loss supervises two positions per window (start, end); this one supervises every context token: a
linear layer on the encoder's last hidden state predicts, per token, whether it lies inside the gold answer
(binary cross-entropy, averaged over the context tokens; a window without the answer has all zeros). Denser
supervision for the same forward/backward pass. The layer is used in training only: the saved model stays a plain
``AutoModelForQuestionAnswering``.

Inputs: ``hidden`` (batch, seq, dim) float; ``context_mask`` (batch, seq) bool (True on context tokens);
``starts``/``ends`` (batch,) int64 token positions of the answer (0 = no answer in this window).
Output: a scalar loss.

Example::

    inside = SpanInsideLoss(dim=384)
    loss = span_loss + 0.5 * inside(hidden, context_mask, starts, ends)
"""
import torch
from torch import nn


class SpanInsideLoss(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.classifier = nn.Linear(dim, 1)

    def forward(self, hidden: torch.Tensor, context_mask: torch.Tensor, starts: torch.Tensor,
                ends: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(hidden).squeeze(-1).float()
        positions = torch.arange(hidden.shape[1], device=hidden.device)[None, :]
        inside = (positions >= starts[:, None]) & (positions <= ends[:, None]) & (starts[:, None] > 0)
        mask = context_mask.to(logits.dtype)
        per_token = nn.functional.binary_cross_entropy_with_logits(logits, inside.to(logits.dtype), reduction='none')
        return (per_token * mask).sum() / mask.sum().clamp_min(1.0)
