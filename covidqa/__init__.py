"""covidqa: the library of the COVID-19 QA service (no jina needed); the Executors are thin modules over it.

Sub-packages, each importing only those below it (``tests/unit/test_layers.py`` checks it):

- ``qa``          HappyTransformer-style train / eval / test of the reader, its recipe and command line
- ``feedback``    labels, the search log, feedback rounds that finetune the embedder while serving; version 0's recipe
- ``index``       the document store (vectors + BM25), fusion of rankings, shard replies
- ``reader``      the extractive reader: windows, span decoding, scoring
- ``embedding``   [CLS] (or mean) sentence vectors over torch or ONNX Runtime; the embedder's versions
- ``data``        QA records (CSV, SQuAD JSON) and passages cut from long documents
- ``text``        tokenization with dynamic padding, words and BM25, question-passage word matching
- ``models``      the one place that finds and loads model files; ONNX exports; the shipped reader and embedder
- ``training``    the optimiser, checkpoints and losses both trainers share
- ``runtime``     atomic writes, JSONL logs, background jobs, child processes, the torch gate
- ``jobs``, ``paths``, ``docs``, ``options``: the registry of child-process jobs, where files live, the document
  schemas, the options models every setting is declared with
"""
import os

# Offline first: never reach for a model hub unless the user asked for it explicitly.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
