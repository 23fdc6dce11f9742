"""What both trainers share: the optimiser and schedule (:mod:`.optim`), resumable checkpoints (:mod:`.checkpoint`) and
the losses (:mod:`.losses`; each builds its own batches)."""
