"""The ONNX Runtime backends compute what the torch models compute, and their cache follows the checkpoint.

Real models only: the packaged all-MiniLM-L6-v2 encoder, and a QA checkpoint saved from it with a seeded span head
(the trained reader is not needed for parity). Exports go to temporary directories ($COVIDQA_HOME is a tmp dir).
"""
import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from covidqa.embedding.encoder import Embedder
from covidqa.models.loading import base_model_dir, load_encoder, load_qa_model, load_tokenizer
from covidqa.models.onnx import (
    OnnxEncoderRunner,
    OnnxQARunner,
    checkpoint_fingerprint,
    ensure_exported,
    onnx_cache_dir,
)
from covidqa.reader.reader import ExtractiveReader
from covidqa.reader.runners import TorchQARunner
from covidqa.text.tokenization import TextTokenizer, pad_batch

pytestmark = pytest.mark.slow  # trains models or exports ONNX graphs: left out by make test-fast

QUESTIONS = [
    'How does the coronavirus spread?',
    'what are the symptoms of covid 19',
    'Should I wear a face mask in public?',
    'Can my pet give me the virus?',
    'How long does the virus survive on surfaces?',
    'Is there a vaccine?',
    'who is at higher risk of severe illness',
    'What should I do if I feel sick?',
    'How long is the incubation period?',
    'Can children get COVID-19?',
    'Is it safe to travel abroad?',
    'How do I clean and disinfect my home?',
]


@pytest.fixture(scope='module', autouse=True)
def onnx_home(tmp_path_factory):
    """Every export of this module lands in a temporary service home, never in the user's workspace."""
    home = tmp_path_factory.mktemp('onnx-home')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('COVIDQA_HOME', str(home))
        mp.delenv('COVIDQA_ONNX_CACHE', raising=False)
        yield home


@pytest.fixture(scope='module')
def faq_questions(faq_csv):
    with open(faq_csv, newline='', encoding='utf-8') as f:
        questions = [row['question'].strip() for row in csv.DictReader(f) if row['question'].strip()]
    questions = list(dict.fromkeys(questions))  # a few FAQ questions repeat: exact ties would make order arbitrary
    assert len(questions) >= 200
    return questions[:200]


@pytest.fixture(scope='module')
def torch_embedder():
    return Embedder('base', backend='torch', num_threads=2).load()


@pytest.fixture(scope='module')
def onnx_embedder():
    return Embedder('base', backend='onnx', num_threads=2).load()


def _copy_checkpoint(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in ('config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt',
                 'special_tokens_map.json'):
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    return dst


@pytest.fixture(scope='module')
def qa_checkpoint(tmp_path_factory):
    """The base encoder with a seeded (untrained) span head, saved like a trained reader."""
    import torch

    torch.manual_seed(1234)
    model = load_qa_model('base')
    with torch.no_grad():  # a sharper head than the default init: clear argmax spans
        model.qa_outputs.weight.mul_(20.0)
    target = tmp_path_factory.mktemp('qa-ckpt') / 'reader'
    model.save_pretrained(str(target))
    load_tokenizer('base').save_pretrained(str(target))
    return target


def _cosine_top10(queries: np.ndarray, docs: np.ndarray) -> np.ndarray:
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    d = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    scores = q @ d.T
    return np.argsort(-scores, axis=1, kind='stable')[:, :10], scores


# ------------------------------------------------------------------------------------------------ embeddings
def test_base_export_is_cached_under_service_home(onnx_home, onnx_embedder):
    info = onnx_embedder._runner.info
    assert info.path.is_file() and info.path.name == 'encoder.onnx' and not info.quantized
    assert info.path.parent.parent == onnx_home / 'onnx-cache'  # base lives in site-packages: cache elsewhere
    assert onnx_cache_dir('base') == info.path.parent
    assert not (base_model_dir() / 'onnx').exists()
    again, session = ensure_exported('base', 'encoder')
    assert not again.exported_now and again.fingerprint == info.fingerprint and again.path == info.path
    assert [i.name for i in session.get_inputs()] == ['input_ids', 'attention_mask']
    assert [tuple(i.shape) for i in session.get_inputs()] == [('batch', 'seq')] * 2  # dynamic axes


def test_embeddings_match_torch_on_mixed_length_batches(faq_questions, torch_embedder, onnx_embedder):
    texts = faq_questions[:64] + QUESTIONS + ['COVID?', 'x', 'word ' * 80]  # 1 to 50 (truncated) tokens
    lengths = {len(ids) for ids in torch_embedder.tokenizer.encode(texts)}
    assert min(lengths) <= 4 and max(lengths) == 50
    reference = torch_embedder.embed_texts(texts, batch_size=32)
    for batch_size in (1, 7, 32):
        got = onnx_embedder.embed_texts(texts, batch_size=batch_size)
        assert got.shape == reference.shape == (len(texts), 384) and got.dtype == np.float32
        assert np.abs(got - reference).max() < 1e-4, batch_size


def test_hidden_states_match_torch_on_padded_and_left_padded_masks(torch_embedder, onnx_embedder):
    tok = TextTokenizer('base')
    ids = tok.encode(['How does the virus spread between people?', 'Masks?', 'What is a novel coronavirus?'])
    input_ids, mask = pad_batch(ids, pad_id=tok.pad_id)
    torch_runner, onnx_runner = torch_embedder._runner, onnx_embedder._runner
    ref, got = torch_runner(input_ids, mask), onnx_runner(input_ids, mask)
    assert got.shape == ref.shape == (3, input_ids.shape[1], 384)
    valid = mask.astype(bool)
    assert np.abs(got[valid] - ref[valid]).max() < 1e-4
    # any mask (not only right padding) is honoured: the graph keeps the raw 2-D mask
    left_ids, left_mask = input_ids[:, ::-1].copy(), mask[:, ::-1].copy()
    ref, got = torch_runner(left_ids, left_mask), onnx_runner(left_ids, left_mask)
    assert np.abs(got[left_mask.astype(bool)] - ref[left_mask.astype(bool)]).max() < 1e-4


def test_top10_search_results_are_identical(faq_questions, torch_embedder, onnx_embedder):
    queries = QUESTIONS + [q.lower().rstrip('?') for q in faq_questions[::20]]
    torch_top, torch_scores = _cosine_top10(torch_embedder.embed_texts(queries), torch_embedder.embed_texts(faq_questions))
    onnx_top, onnx_scores = _cosine_top10(onnx_embedder.embed_texts(queries), onnx_embedder.embed_texts(faq_questions))
    assert torch_top.shape == (len(queries), 10)
    assert (torch_top == onnx_top).all(), [q for q, a, b in zip(queries, torch_top, onnx_top) if (a != b).any()]
    score_diff = np.abs(torch_scores - onnx_scores).max()
    assert score_diff < 1e-5
    # the ranking is decided by gaps far larger than the backends' difference (no near-ties: not identical by luck)
    top11 = -np.sort(-torch_scores, axis=1)[:, :11]
    assert np.diff(-top11, axis=1).min() > 5 * score_diff


def test_runner_refuses_bad_shapes(onnx_embedder):
    runner = onnx_embedder._runner
    with pytest.raises(ValueError, match='attention_mask has shape'):
        runner(np.ones((2, 5), np.int64), np.ones((2, 4), np.int64))
    with pytest.raises(ValueError, match='non-empty'):
        runner(np.ones((0, 5), np.int64), np.ones((0, 5), np.int64))


# ------------------------------------------------------------------------------------------------ QA
def test_qa_runner_logits_and_argmax_spans_match_torch(qa_checkpoint, paragraphs_train):
    import json

    records = json.loads(Path(paragraphs_train).read_text())['data'][:12]
    tokenizer = load_tokenizer(qa_checkpoint)
    enc = tokenizer([r['question'] for r in records], [r['context'] for r in records], truncation='only_second',
                    max_length=384, padding=True, return_tensors='np', return_token_type_ids=True)
    args = (enc['input_ids'].astype(np.int64), enc['attention_mask'].astype(np.int64),
            enc['token_type_ids'].astype(np.int64))
    torch_start, torch_end = TorchQARunner(qa_checkpoint, num_threads=2)(*args)
    onnx_runner = OnnxQARunner(qa_checkpoint, num_threads=2)
    assert onnx_runner.info.path.parent == qa_checkpoint / 'onnx'  # writable checkpoint: cache next to it
    onnx_start, onnx_end = onnx_runner(*args)
    valid = args[1].astype(bool)
    assert onnx_start.shape == torch_start.shape == args[0].shape
    assert np.abs(onnx_start - torch_start)[valid].max() < 1e-3
    assert np.abs(onnx_end - torch_end)[valid].max() < 1e-3
    masked = lambda x: np.where(valid, x, -np.inf)  # noqa: E731
    assert (masked(onnx_start).argmax(1) == masked(torch_start).argmax(1)).all()
    assert (masked(onnx_end).argmax(1) == masked(torch_end).argmax(1)).all()


def test_extractive_reader_answers_identical_across_backends(qa_checkpoint, paragraphs_train):
    import json

    records = json.loads(Path(paragraphs_train).read_text())['data'][20:36]
    questions = [r['question'] for r in records]
    contexts = [[r['context'], records[(i + 1) % len(records)]['context']] for i, r in enumerate(records)]
    kwargs = dict(top_k=3, no_answer_threshold=0.0, max_seq_length=256, doc_stride=64, num_threads=2,
                  overlap_threshold=1.0)  # near-copies kept: 3 answers a question to compare
    by_torch = ExtractiveReader(qa_checkpoint, backend='torch', **kwargs).read(questions, contexts).answers
    by_onnx = ExtractiveReader(qa_checkpoint, backend='onnx', **kwargs).read(questions, contexts).answers
    assert len(by_torch) == len(by_onnx) == len(questions)
    for t_answers, o_answers in zip(by_torch, by_onnx):
        assert [(a.answer, a.start, a.end, a.context_index) for a in t_answers] == \
               [(a.answer, a.start, a.end, a.context_index) for a in o_answers]
        assert all(abs(a.score - b.score) < 1e-4 for a, b in zip(t_answers, o_answers))
        assert len(t_answers) == 3 and t_answers[0].answer


# ------------------------------------------------------------------------------------------------ the cache
@pytest.fixture()
def encoder_copy(tmp_path):
    return _copy_checkpoint(base_model_dir(), tmp_path / 'embedder' / 'v0001')


def test_checkpoint_change_triggers_reexport(encoder_copy, torch_embedder):
    import torch

    tok = TextTokenizer('base')
    input_ids, mask = pad_batch(tok.encode(QUESTIONS), pad_id=tok.pad_id)
    first = OnnxEncoderRunner(encoder_copy, num_threads=2)
    assert first.info.exported_now and first.info.path == encoder_copy / 'onnx' / 'encoder.onnx'
    before = first(input_ids, mask)
    cached = OnnxEncoderRunner(encoder_copy, num_threads=2)
    assert not cached.info.exported_now and cached.info.fingerprint == first.info.fingerprint

    model = load_encoder(encoder_copy)  # what feedback training does: change weights, save over the checkpoint
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.mul_(1.5)
    model.save_pretrained(str(encoder_copy))
    assert checkpoint_fingerprint(encoder_copy) != first.info.fingerprint

    fresh = OnnxEncoderRunner(encoder_copy, num_threads=2)
    assert fresh.info.exported_now and fresh.info.fingerprint != first.info.fingerprint
    after = fresh(input_ids, mask)
    assert np.abs(after - before).max() > 1e-2  # the new weights are used...
    reference = Embedder(encoder_copy, backend='torch', num_threads=2)
    new_ref = reference.load()._runner(input_ids, mask)
    assert np.abs(after - new_ref)[mask.astype(bool)].max() < 1e-4  # ...and match torch on them


@pytest.mark.parametrize('damage', ['garbage', 'same-size-garbage', 'missing', 'meta-missing'])
def test_damaged_cache_is_reexported_not_fatal(encoder_copy, damage):
    runner = OnnxEncoderRunner(encoder_copy, num_threads=1)
    path, meta = runner.info.path, runner.info.path.with_suffix('.json')
    size = path.stat().st_size
    if damage == 'garbage':
        path.write_bytes(b'not an onnx model')
    elif damage == 'same-size-garbage':
        with open(path, 'r+b') as f:  # the size check passes: only loading the session can tell
            f.seek(0)
            f.write(b'\xff' * 4096)
    elif damage == 'missing':
        path.unlink()
    else:
        meta.unlink()
    repaired = OnnxEncoderRunner(encoder_copy, num_threads=1)
    assert repaired.info.exported_now
    assert path.stat().st_size == size and meta.is_file()
    out = repaired(np.array([[101, 2129, 2003, 102]]), np.ones((1, 4), np.int64))
    assert out.shape == (1, 4, 384) and np.isfinite(out).all()
    assert not list(path.parent.glob('.*.tmp-*'))  # no temporaries left behind


# ------------------------------------------------------------------------------------------------ int8
def test_int8_export_is_smaller_and_close(faq_questions, onnx_embedder):
    quantized = Embedder('base', backend='onnx-int8', num_threads=2).load()  # flow.yml's backend name
    assert quantized._runner.info.quantized and quantized._runner.info.path.name == 'encoder.int8.onnx'
    assert quantized._runner.info.path.stat().st_size < 0.4 * onnx_embedder._runner.info.path.stat().st_size
    texts = faq_questions[:100]
    full, small = onnx_embedder.embed_texts(texts), quantized.embed_texts(texts)
    cos = (full * small).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(small, axis=1)
    assert cos.min() > 0.9, cos.min()
    # int8 search still finds each FAQ question itself first
    top, _ = _cosine_top10(small, full)
    assert (top[:, 0] == np.arange(len(texts))).mean() >= 0.95


def test_onnx_backend_is_fp32_unless_int8_is_asked_for(monkeypatch, onnx_embedder):
    """``backend='onnx'`` never becomes int8 behind the user's back (the old ``$COVIDQA_ONNX_INT8`` switch is gone),
    and ``quantize`` is a plain yes/no: ``None`` ("let something else decide") is refused."""
    monkeypatch.setenv('COVIDQA_ONNX_INT8', '1')
    fp32 = Embedder('base', backend='onnx', num_threads=1).load()
    assert not fp32._runner.info.quantized and fp32._runner.info.path == onnx_embedder._runner.info.path
    assert not OnnxEncoderRunner('base', num_threads=1).info.quantized
    with pytest.raises(ValueError, match='quantize must be True or False'):
        OnnxEncoderRunner('base', num_threads=1, quantize=None)


def test_int8_reader_backend_keeps_answer_spans_valid(qa_checkpoint, paragraphs_train):
    """``backend='onnx-int8'`` (flow.yml's default) runs the quantized graph; its spans still map back to the text
    and mostly agree with fp32 (quality on real data: benchmarks/bench_speed.py)."""
    import json

    records = json.loads(Path(paragraphs_train).read_text())['data'][40:52]
    kwargs = dict(top_k=1, no_answer_threshold=0.0, max_seq_length=256, doc_stride=64, num_threads=2)
    fp32 = ExtractiveReader(qa_checkpoint, backend='onnx', **kwargs).load()
    int8 = ExtractiveReader(qa_checkpoint, backend='onnx-int8', **kwargs).load()
    assert int8._runner.info.quantized and not fp32._runner.info.quantized
    questions, contexts = [r['question'] for r in records], [[r['context']] for r in records]
    agree = 0
    for record, a, b in zip(records, fp32.read(questions, contexts).answers, int8.read(questions, contexts).answers):
        assert b[0].answer and record['context'][b[0].start:b[0].end] == b[0].answer
        agree += (a[0].start, a[0].end) == (b[0].start, b[0].end)
    assert agree >= len(records) // 2, agree
