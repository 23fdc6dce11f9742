"""What both trainers (the reader's, :mod:`covidqa.qa.train`; the embedder's, :mod:`covidqa.feedback.finetune`) share:
the training loop (:mod:`.loop`), the optimiser and schedule (:mod:`.optim`), resumable checkpoints
(:mod:`.checkpoint`) and the losses (:mod:`.losses`; each builds its own batches)."""
