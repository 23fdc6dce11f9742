"""The embedder learns: labels and the search log (:mod:`.store`, :mod:`.search_log`), the embedder's finetuning
(:mod:`.finetune`), the rounds that train new versions while the service serves (:mod:`.rounds`), and the recipe
of version 0 they start from, the shipped ``[CLS]`` embedder (:mod:`.distill`)."""
