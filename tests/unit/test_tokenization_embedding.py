"""Tokenizer (dynamic padding) and CLS embedder with the real packaged MiniLM."""
import numpy as np
import pytest

from covidqa.embedding.encoder import Embedder
from covidqa.embedding.pooling import pool
from covidqa.text.tokenization import TextTokenizer, length_sorted_batches, pad_batch

TEXTS = ['How does the virus spread?', 'What is COVID-19?',
         'Is it safe to travel by plane during the pandemic if I have been vaccinated twice already?', 'Masks?']


@pytest.fixture(scope='module')
def embedder():
    return Embedder().load()


def test_tokens_are_truncated_and_unpadded():
    tok = TextTokenizer(max_length=8)
    ids = tok.encode(TEXTS)
    assert [len(x) for x in ids] == [min(8, len(x)) for x in TextTokenizer(max_length=512).encode(TEXTS)]
    assert all(x[0] == tok.tokenizer.cls_token_id and x[-1] == tok.tokenizer.sep_token_id for x in ids)
    assert max(len(x) for x in ids) == 8 and min(len(x) for x in ids) < 8


def test_pad_batch_pads_to_the_longest_member_only():
    ids = TextTokenizer().encode(TEXTS[:2])
    input_ids, mask = pad_batch(ids, pad_id=0)
    assert input_ids.shape == (2, max(len(x) for x in ids))
    assert mask.sum(1).tolist() == [len(x) for x in ids]
    assert (input_ids[mask == 0] == 0).all()
    with pytest.raises(ValueError, match='at least one'):
        pad_batch([])


def test_length_sorted_batches_cover_every_position_once():
    lengths = [5, 50, 7, 20, 3]
    batches = list(length_sorted_batches(lengths, 2))
    assert sorted(p for b in batches for p in b) == list(range(5))
    assert batches[0] == [1, 3]  # longest first


def test_cls_vector_is_the_first_hidden_state_and_independent_of_padding(embedder):
    together = embedder.embed_texts(TEXTS)
    alone = np.stack([embedder.embed_texts([t])[0] for t in TEXTS])
    assert together.shape == (4, 384) and together.dtype == np.float32
    np.testing.assert_allclose(together, alone, atol=1e-5)

    import torch
    enc = embedder.tokenizer.tokenizer(TEXTS[:1], return_tensors='pt', truncation=True, max_length=50)
    with torch.inference_mode():
        hidden = embedder._runner.model(**enc).last_hidden_state
    np.testing.assert_allclose(together[0], hidden[0, 0].numpy(), atol=1e-5)


def test_mean_pooling_differs_from_cls_and_ranks_paraphrases(embedder):
    mean = Embedder(pooling='mean').embed_texts(TEXTS)
    cls = embedder.embed_texts(TEXTS)
    assert not np.allclose(mean, cls)
    a, b, c = Embedder(pooling='mean').embed_texts(['How is the coronavirus transmitted?',
                                                    'How does the virus spread?', 'Can I cook pasta in a kettle?'])
    cos = lambda x, y: float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))  # noqa: E731
    assert cos(a, b) > cos(a, c)


def test_one_pooling_for_numpy_and_torch():
    """The finetuner pools torch tensors (with gradients) with the same function the embedder uses on numpy."""
    import torch

    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=np.int64)
    np.testing.assert_allclose(pool(hidden, mask, 'mean')[1], hidden[1, :2].mean(0), rtol=1e-6)
    np.testing.assert_array_equal(pool(hidden, mask, 'cls'), hidden[:, 0])
    t_hidden = torch.tensor(hidden, requires_grad=True)
    for pooling in ('cls', 'mean'):
        pooled = pool(t_hidden, torch.tensor(mask), pooling)
        assert isinstance(pooled, torch.Tensor) and pooled.requires_grad
        np.testing.assert_allclose(pooled.detach().numpy(), pool(hidden, mask, pooling), rtol=1e-6)
    pool(t_hidden, torch.tensor(mask), 'mean').sum().backward()
    assert (t_hidden.grad[1, 2:] == 0).all() and (t_hidden.grad[1, :2] != 0).all()  # padding gets no gradient
    with pytest.raises(ValueError, match='pooling must be one of'):
        pool(hidden, mask, 'max')


@pytest.mark.parametrize('kwargs, message', [
    ({'pooling': 'max'}, 'pooling must be one of'),
    ({'backend': 'tensorflow'}, 'backend must be one of'),
    ({'batch_size': 0}, 'batch_size must be a positive integer'),
])
def test_bad_embedder_config_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Embedder(**kwargs)


def test_missing_model_directory_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        Embedder(model=tmp_path).load()


PASSAGE = ' '.join(['The median incubation period of COVID-19 was estimated at 5.1 days from 181 confirmed cases, '
                    'and most people who develop symptoms do so within 11.5 days of infection.'] * 8)  # ~300 tokens


def test_a_literature_passage_is_embedded_whole_and_everything_else_as_a_query(embedder):
    tok = embedder.tokenizer
    ids = tok.encode_documents([TEXTS[2], PASSAGE, PASSAGE], ['faq', 'literature', 'faq'], passage_max_length=256)
    assert [len(x) for x in ids] == [len(tok.encode([TEXTS[2]])[0]), 256, 50]
    with pytest.raises(ValueError, match='2 texts but 1 kinds'):
        tok.encode_documents(TEXTS[:2], ['faq'])
    # the store's re-embedding (embed_documents) gives the vectors the Flow's tokenizer + embedder gave at /index
    vectors = embedder.embed_documents([PASSAGE, TEXTS[0]], ['literature', 'faq'])
    np.testing.assert_allclose(vectors, embedder.embed_ids([tok.encode([PASSAGE], max_length=256)[0],
                                                            tok.encode([TEXTS[0]])[0]]), atol=1e-5)
    assert not np.allclose(vectors[0], embedder.embed_texts([PASSAGE])[0], atol=1e-3)  # not its first 50 tokens alone
