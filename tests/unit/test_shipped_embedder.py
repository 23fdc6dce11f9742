"""The [CLS] embedder shipped in the repository (version 0): verified, unpacked once, embeds with [CLS] only, and puts
its [CLS] vector where the base model's mean pooling is; its recipe (covidqa.feedback.distill) and packing."""
import csv
import dataclasses
import json
import shutil

import numpy as np
import pytest

from covidqa.embedding.encoder import Embedder
from covidqa.embedding.versions import VERSION_FILE, ModelVersions
from covidqa.feedback.distill import DistillationTexts, distill_embedder, ship_embedder
from covidqa.models import packing, shipped
from covidqa.models.loading import DEFAULT_EMBEDDER, SHIPPED_EMBEDDER_NAME, resolve_model_path
from covidqa.models.shipped import SHIPPED_EMBEDDER_FILE, ShippedModelError, checksum_file, read_metadata, verify
from tests.helpers import data_file


@pytest.fixture(scope='module')
def home(tmp_path_factory):
    """One service home for the module: the shipped embedder is unpacked into it once."""
    path = tmp_path_factory.mktemp('home')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('COVIDQA_HOME', str(path))
        yield path


def test_the_shipped_embedder_is_version_0_and_embeds_with_cls_only(home, monkeypatch):
    assert DEFAULT_EMBEDDER == SHIPPED_EMBEDDER_NAME
    verify(SHIPPED_EMBEDDER_FILE, 'embedder')
    assert SHIPPED_EMBEDDER_FILE.stat().st_size < 50 * 2**20
    meta = read_metadata(SHIPPED_EMBEDDER_FILE, 'embedder')['meta']
    assert meta['pooling'] == 'cls' and meta['steps'] > 0
    model_dir = resolve_model_path(SHIPPED_EMBEDDER_NAME)
    assert model_dir.parent == home / 'models' and json.loads((model_dir / VERSION_FILE).read_text())['pooling'] == 'cls'
    monkeypatch.setattr(packing, 'unpack_model', lambda *a, **k: pytest.fail('unpacked a second time'))
    assert resolve_model_path(SHIPPED_EMBEDDER_NAME) == model_dir
    versions = ModelVersions(home / 'versions')
    assert versions.model_path(0) == SHIPPED_EMBEDDER_NAME and versions.pooling(0) == 'cls'
    assert ModelVersions(home / 'versions', base_model='base').pooling(0) is None  # the packaged base, by name
    assert Embedder().pooling == 'cls'
    with pytest.raises(ValueError, match="trained with pooling='cls'.*cannot embed with pooling='mean'"):
        Embedder(SHIPPED_EMBEDDER_NAME, pooling='mean')


def test_a_damaged_shipped_embedder_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv('COVIDQA_HOME', str(tmp_path / 'home'))  # nothing unpacked here yet
    damaged = tmp_path / SHIPPED_EMBEDDER_FILE.name
    damaged.write_bytes(SHIPPED_EMBEDDER_FILE.read_bytes()[:-64])  # a cut-off copy
    shutil.copy(checksum_file(SHIPPED_EMBEDDER_FILE), checksum_file(damaged))
    monkeypatch.setitem(shipped.KINDS, 'embedder', dataclasses.replace(shipped.KINDS['embedder'], file=damaged))
    with pytest.raises(ShippedModelError, match=rf'shipped embedder {damaged} is damaged'):
        resolve_model_path(SHIPPED_EMBEDDER_NAME)
    with pytest.raises(ShippedModelError, match='is not a packed reader'):
        read_metadata(SHIPPED_EMBEDDER_FILE, 'reader')


def test_its_cls_vector_finds_reworded_questions_as_mean_pooling_does(home):
    """Community question bodies -> the entry with their answer (held out from the recipe): the shipped [CLS] ranks
    as mean pooling of the base model does, far ahead of the base model's own [CLS]."""
    with open(data_file('covidqa_xhlulu_community/community.csv'), newline='', encoding='utf-8') as f:
        rows = [r for r in csv.DictReader(f) if r['title'].strip() and r['question'].strip()][:240]
    titles, bodies = [r['title'] for r in rows], [r['question'][:300] for r in rows]

    def hit_at_1(model, pooling=None):
        embedder = Embedder(model, pooling=pooling, max_length=50, num_threads=2)
        scores = embedder.embed_texts(bodies) @ embedder.embed_texts(titles).T
        return float(np.mean(scores.argmax(1) == np.arange(len(rows))))

    shipped_cls, base_cls, base_mean = hit_at_1(SHIPPED_EMBEDDER_NAME), hit_at_1('base', 'cls'), hit_at_1('base', 'mean')
    assert shipped_cls > base_cls + 0.05 and shipped_cls > base_mean - 0.03, (shipped_cls, base_cls, base_mean)


def test_the_recipe_trains_a_cls_embedder_and_ship_packs_only_that(tmp_path):
    texts = DistillationTexts(questions=['what is covid?', 'how does the virus spread?', 'who gets sick?'] * 4,
                              passages=['Coronaviruses are a family of viruses that cause illness in animals.'] * 4)
    args = {'question_batch': 4, 'passage_batch': 2, 'max_steps': 3, 'warmup_ratio': 0.0, 'passage_share': 0.5}
    result = distill_embedder(tmp_path / 'out', checkpoints=tmp_path / 'ckpt', args=args, texts=texts)
    assert result.steps == 3 and result.first_loss is not None
    saved = json.loads((tmp_path / 'out' / VERSION_FILE).read_text())
    assert saved['pooling'] == 'cls' and saved['args']['max_steps'] == 3
    assert distill_embedder(tmp_path / 'out', checkpoints=tmp_path / 'ckpt', args=args, texts=texts) is None
    digest = ship_embedder(tmp_path / 'out', tmp_path / 'packed.safetensors')
    assert checksum_file(tmp_path / 'packed.safetensors').read_text().split()[0] == digest
    assert read_metadata(tmp_path / 'packed.safetensors', 'embedder')['meta']['steps'] == 3
    (tmp_path / 'out' / VERSION_FILE).write_text(json.dumps({**saved, 'pooling': 'mean'}))
    with pytest.raises(ValueError, match="only a \\[CLS\\] embedder can be version 0"):
        ship_embedder(tmp_path / 'out', tmp_path / 'other.safetensors')
    with pytest.raises(FileNotFoundError, match='run `make embedder` first'):
        ship_embedder(tmp_path / 'nothing')
