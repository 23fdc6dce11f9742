"""The reader shipped in the repository (covidqa.models.shipped): one verified file that answers without any training."""
import dataclasses
import shutil

import numpy as np
import pytest
import torch

from covidqa.data.records import read_qa_file
from covidqa.models import packing, shipped
from covidqa.models.loading import atomic_save_pretrained, load_qa_model, load_tokenizer
from covidqa.models.packing import pack_model, unpack_model
from covidqa.models.shipped import (
    SHIPPED_READER_FILE,
    ShippedModelError,
    checksum_file,
    read_metadata,
    shipped_model_dir,
    verify,
)
from covidqa.qa.api import QuestionAnswering
from covidqa.qa.recipe import PARAGRAPH_DEV
from covidqa.reader.metrics import f1_score
from covidqa.reader.runners import resolve_reader_model
from tests.helpers import data_file


@pytest.fixture(scope='module')
def packed(tmp_path_factory):
    """A reader directory (base encoder + a seeded span head), packed into one file."""
    root = tmp_path_factory.mktemp('packed')
    torch.manual_seed(0)
    atomic_save_pretrained(load_qa_model('base'), load_tokenizer('base'), root / 'reader')
    digest = pack_model(root / 'reader', root / 'reader.fp16.safetensors', {'recipe': 'test'})
    return root, digest


def logits(model_dir, text='Where do bats live?', context='Bats live in caves and forests.'):
    tokenizer = load_tokenizer(model_dir)
    batch = tokenizer(text, context, return_tensors='pt')
    with torch.no_grad():
        out = load_qa_model(model_dir)(**batch)
    return out.start_logits.numpy(), out.end_logits.numpy()


def test_pack_and_unpack_keep_the_reader(packed):
    root, digest = packed
    packed_file = root / 'reader.fp16.safetensors'
    assert packed_file.stat().st_size < 50 * 2**20
    assert checksum_file(packed_file).read_text().split() == [digest, packed_file.name]
    assert read_metadata(packed_file)['meta'] == {'recipe': 'test'}
    unpack_model(packed_file, root / 'unpacked')
    for original, restored in zip(logits(root / 'reader'), logits(root / 'unpacked')):
        np.testing.assert_allclose(original, restored, atol=0.05)  # fp16 weights


def test_a_damaged_file_is_refused_by_name(packed, tmp_path):
    root, _ = packed
    damaged = tmp_path / 'reader.fp16.safetensors'
    shutil.copy(root / 'reader.fp16.safetensors', damaged)
    shutil.copy(checksum_file(root / 'reader.fp16.safetensors'), checksum_file(damaged))
    verify(damaged)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ShippedModelError, match=r'is damaged: sha256 [0-9a-f]{64} does not match'):
        unpack_model(damaged, tmp_path / 'out')
    assert not (tmp_path / 'out').exists()
    checksum_file(damaged).unlink()
    with pytest.raises(ShippedModelError, match='no checksum for'):
        verify(damaged)
    with pytest.raises(ShippedModelError, match='not found'):
        verify(tmp_path / 'missing.safetensors')


def test_the_service_never_falls_back_to_an_untrained_reader_over_a_damaged_file(packed, tmp_path, monkeypatch):
    root, _ = packed
    damaged = tmp_path / 'reader.fp16.safetensors'
    damaged.write_bytes((root / 'reader.fp16.safetensors').read_bytes()[:-100])  # a cut-off copy
    shutil.copy(checksum_file(root / 'reader.fp16.safetensors'), checksum_file(damaged))
    monkeypatch.setitem(shipped.KINDS, 'reader', dataclasses.replace(shipped.KINDS['reader'], file=damaged))
    monkeypatch.setenv('COVIDQA_HOME', str(tmp_path / 'home'))  # no reader trained into this home
    with pytest.raises(ShippedModelError, match='damaged'):
        resolve_reader_model(None)


def test_a_lost_file_whose_checksum_remains_is_named(packed, tmp_path, monkeypatch):
    root, _ = packed
    lost = tmp_path / 'reader.fp16.safetensors'
    shutil.copy(checksum_file(root / 'reader.fp16.safetensors'), checksum_file(lost))  # the weights are gone
    monkeypatch.setitem(shipped.KINDS, 'reader', dataclasses.replace(shipped.KINDS['reader'], file=lost))
    monkeypatch.setenv('COVIDQA_HOME', str(tmp_path / 'home'))
    with pytest.raises(ShippedModelError, match='not found'):
        resolve_reader_model(None)


def test_the_shipped_reader_is_verified_unpacked_once_and_used_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv('COVIDQA_HOME', str(tmp_path))
    verify(SHIPPED_READER_FILE)
    model_dir = resolve_reader_model(None)
    assert model_dir == shipped_model_dir('reader') and model_dir.parent == tmp_path / 'models'
    monkeypatch.setattr(packing, 'unpack_model', lambda *a, **k: pytest.fail('unpacked a second time'))
    assert resolve_reader_model(None) == model_dir
    assert read_metadata(SHIPPED_READER_FILE)['meta']['args']['question_word_type'] is True


@pytest.mark.slow
def test_the_shipped_reader_beats_the_untrained_head_on_dev_questions(tmp_path, monkeypatch):
    monkeypatch.setenv('COVIDQA_HOME', str(tmp_path))
    records = list(read_qa_file(data_file(PARAGRAPH_DEV)))[::12][:16]

    def mean_f1(qa):
        answers = qa.test(records)
        return float(np.mean([f1_score(a.answer, r.gold_answers) for a, r in zip(answers, records)]))

    torch.manual_seed(0)
    untrained, shipped_f1 = mean_f1(QuestionAnswering('base')), mean_f1(QuestionAnswering())
    assert shipped_f1 > 0.45 and shipped_f1 > untrained + 0.25, (shipped_f1, untrained)
