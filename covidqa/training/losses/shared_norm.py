"""Shared-normalisation span loss: one softmax over all windows of the same question.

The reader reads a long context in overlapping windows and the span loss trains each window on its own: the
window holding the answer learns its span, a window without it learns "no answer" (``[CLS]``). Nothing compares
the windows with each other, yet decoding a long article must pick the best span over ~20 of them. Clark & Gardner
(2018, "Simple and Effective Multi-Paragraph Reading Comprehension") normalise the start (and end) logits over the
context tokens of *all* windows of a question together, so a distractor window's spans must score below the
answer's: its "shared-norm" objective. Here it is added to the per-window loss (which keeps the no-answer slot
trained); windows of one question must therefore share a batch (``QATrainArgs.shared_norm_weight`` batches them so).

Inputs: ``start_logits``/``end_logits`` (batch, seq) float; ``context_mask`` (batch, seq) bool (True on context
tokens); ``starts``/``ends`` (batch,) int64 token positions of the answer (0 = no answer in this window);
``groups`` (batch,) int64, the same value for windows of the same question.
Output: a scalar loss: the mean over groups of two or more windows with an answer in one of them of
``(CE(start) + CE(end)) / 2``, each cross-entropy over the concatenated context tokens of the group's windows;
0 when the batch has no such group.

Example::

    shared = SharedNormLoss()
    loss = out.loss + 1.0 * shared(out.start_logits, out.end_logits, context_mask, starts, ends, groups)
"""
import torch
from torch import nn


class SharedNormLoss(nn.Module):
    def forward(self, start_logits: torch.Tensor, end_logits: torch.Tensor, context_mask: torch.Tensor,
                starts: torch.Tensor, ends: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        start_logits, end_logits = start_logits.float(), end_logits.float()
        losses = []
        for group in torch.unique(groups):
            members = torch.nonzero(groups == group).flatten().tolist()
            answered = [w for w in members if starts[w] > 0]
            if len(members) < 2 or not answered:
                continue
            gold = answered[0]
            # the gold positions in the concatenation: context tokens of the windows before it + those before them
            before = sum(int(context_mask[w].sum()) for w in members[: members.index(gold)])
            targets = [before + int(context_mask[gold, :position].sum()) for position in (starts[gold], ends[gold])]
            per_end = [
                nn.functional.cross_entropy(torch.cat([logits[w][context_mask[w]] for w in members])[None, :],
                                            torch.tensor([target]))
                for logits, target in ((start_logits, targets[0]), (end_logits, targets[1]))
            ]
            losses.append((per_end[0] + per_end[1]) / 2)
        if not losses:
            return start_logits.new_zeros(())
        return torch.stack(losses).mean()
