"""Feedback: labels and the search log (:mod:`.store`, :mod:`.search_log`), the embedder's finetuning
(:mod:`.finetune`) and the rounds that train new versions while the service serves (:mod:`.rounds`)."""
