"""Question-word token types: which context tokens get marked, and a reader trained with them (real packaged model)."""

import numpy as np
import pytest

from covidqa.models.loading import load_qa_model, load_tokenizer
from covidqa.qa.api import QuestionAnswering
from covidqa.reader.reader import ExtractiveReader
from covidqa.reader.windows import encode_pairs
from covidqa.text.question_match import (
    QUESTION_WORD_TYPE,
    add_question_word_type,
    question_word_marks,
    uses_question_word_type,
)
from tests.helpers import make_rows, read_one

QUESTION = 'How is the coronavirus transmitted between humans?'
CONTEXT = 'SARS-CoV-2 transmission among humans happens by droplets. The coronavirus is transmitted by air.'


@pytest.fixture(scope='module')
def tokenizer():
    return load_tokenizer('base')


def marked_words(tokenizer, question, context):
    windows = encode_pairs(tokenizer, [question], [context], max_seq_length=128, mark_question_words=True)
    tokens = tokenizer.convert_ids_to_tokens(windows.input_ids[0].tolist())
    return [t for t, kind in zip(tokens, windows.token_type_ids[0]) if kind == QUESTION_WORD_TYPE], windows


def test_marks_question_words_their_stems_and_word_pieces_but_not_stop_words(tokenizer):
    marked, windows = marked_words(tokenizer, QUESTION, CONTEXT)
    # 'transmission' shares the stem 'transm' with 'transmitted'; 'coronavirus' is two word pieces, both marked
    assert marked == ['transmission', 'humans', 'corona', '##virus', 'transmitted']
    types, mask = windows.token_type_ids[0], windows.context_mask[0]
    assert set(types[~mask][: np.argmax(mask)].tolist()) == {0}  # the question keeps type 0
    assert types[-1] == 1  # the final [SEP]
    # without the option the layout is the usual 0/1 one
    plain = encode_pairs(tokenizer, [QUESTION], [CONTEXT], max_seq_length=128)
    assert set(plain.token_type_ids[0].tolist()) == {0, 1}
    assert np.array_equal(plain.input_ids[0], windows.input_ids[0])


def test_marks_follow_each_window_of_a_long_context(tokenizer):
    context = ' '.join(['Bats sleep during the day.'] * 40 + ['Droplets carry the coronavirus.'] * 3)
    windows = encode_pairs(tokenizer, ['Does the coronavirus travel in droplets?'], [context],
                           max_seq_length=64, doc_stride=16, mark_question_words=True)
    assert len(windows) > 3
    marks = question_word_marks(tokenizer, tokenizer('Does the coronavirus travel in droplets?',
                                                     add_special_tokens=False)['input_ids'],
                                tokenizer(context, add_special_tokens=False)['input_ids'])
    assert marks.sum() == 3 * 3  # 'droplets', 'corona', '##virus' in each of the 3 last sentences
    per_window = [int((t == QUESTION_WORD_TYPE).sum()) for t in windows.token_type_ids]
    assert per_window[0] == 0 and per_window[-1] > 0


def test_added_type_starts_as_the_context_type():
    import torch

    model = load_qa_model('base')
    assert not uses_question_word_type(model)
    assert add_question_word_type(model) and not add_question_word_type(model)
    assert uses_question_word_type(model) and model.config.type_vocab_size == 3
    ids = torch.tensor([[101, 2129, 102, 7865, 3345, 102]])
    ones = torch.tensor([[0, 0, 0, 1, 1, 1]])
    twos = torch.tensor([[0, 0, 0, 2, 2, 1]])
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=ones).start_logits
        b = model(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=twos).start_logits
    assert torch.allclose(a, b)


def test_reader_trained_with_question_word_type_saves_and_reloads_marking(tmp_path):
    import torch

    rows = make_rows()
    qa = QuestionAnswering('base')
    assert not qa.reader.marks_question_words
    before = qa.model.bert.embeddings.word_embeddings.weight.detach().clone()
    qa.train([_record(r) for r in rows], {
        'num_train_epochs': 1, 'learning_rate': 3e-4, 'batch_size': 8, 'max_seq_length': 96, 'freeze_layers': 2,
        'question_word_type': True, 'output_dir': str(tmp_path / 'reader')})
    types = qa.model.bert.embeddings.token_type_embeddings.weight.detach()
    assert types.shape[0] == 3 and not torch.equal(types[2], types[1])  # the new type trained
    assert torch.equal(qa.model.bert.embeddings.word_embeddings.weight, before)  # frozen embeddings stay frozen
    assert qa.reader.marks_question_words
    reader = ExtractiveReader(tmp_path / 'reader')
    assert reader.marks_question_words
    answer = read_one(reader, rows[0][1], [rows[0][0]])[0]
    assert rows[0][0][answer.start:answer.end] == answer.answer


def _record(row):
    from covidqa.data.records import QARecord

    context, question, answer, start = row
    return QARecord(context=context, question=question, answer_text=answer, answer_start=start)
