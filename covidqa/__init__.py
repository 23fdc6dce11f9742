"""covidqa: the plain ML logic of the COVID-19 QA service (no jina needed).

Modules:
- ``models``        the one place that finds and loads model files (tokenizer, encoder, QA model)
- ``docs``          the docarray document schemas that flow through the service
- ``tokenization``  question/document tokenization with per-batch dynamic padding
- ``embedding``     [CLS] (or mean) sentence vectors, torch or ONNX Runtime backend
"""
import os

# Offline first: never reach for a model hub unless the user asked for it explicitly.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
