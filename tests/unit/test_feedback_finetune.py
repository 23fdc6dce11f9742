"""Finetuning from labels with the real MiniLM: the CLI saves a version, moves TARGET, and the model learned."""
import json
import subprocess
import sys

import numpy as np
import pytest

from covidqa.embedding.encoder import Embedder
from covidqa.embedding.versions import ModelVersions, saved_pooling
from covidqa.feedback.finetune import load_training_data, train_encoder
from covidqa.feedback.store import TrainingExample, write_rows
from covidqa.models.loading import load_encoder, load_tokenizer
from tests.helpers import REPO

pytestmark = pytest.mark.slow  # trains models or exports ONNX graphs: left out by make test-fast

# Two queries, each with the match a user accepted and the ones they rejected (as the labeler page sends them).
EXAMPLES = [
    TrainingExample('my dog sneezes, can pets catch the coronavirus from people?',
                    ['Can pets catch the cold?'], ['How long does the virus live on steel?', 'Is there a vaccine?']),
    TrainingExample('which surfaces keep the virus alive the longest?',
                    ['How long does the virus live on steel?'], ['Can pets catch the cold?', 'Is there a vaccine?']),
]


def _rows(examples):
    return [{'query': e.query, 'document': d, 'label': 'accepted'} for e in examples for d in e.positives] + \
           [{'query': e.query, 'document': d, 'label': 'rejected'} for e in examples for d in e.negatives]


def _margins(model) -> np.ndarray:
    """cos(query, accepted) - max cos(query, rejected) for each example."""
    emb = Embedder(model)
    out = []
    for e in EXAMPLES:
        q, *docs = emb.embed_texts([e.query] + e.positives + e.negatives)
        docs = np.stack(docs)
        cos = docs @ q / (np.linalg.norm(docs, axis=1) * np.linalg.norm(q))
        out.append(cos[0] - cos[1:].max())
    return np.asarray(out)


def test_cli_fit_saves_a_version_moves_target_and_learns(tmp_path):
    train = tmp_path / 'labels.csv'
    write_rows(_rows(EXAMPLES), train)
    versions_dir = tmp_path / 'embedder'
    command = [sys.executable, '-m', 'covidqa.feedback.finetune', 'fit', '--train-data', str(train), '--epochs', '6',
               '--lr', '1e-4', '--batch-size', '2', '--versions-dir', str(versions_dir), '--num-threads', '2']
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    versions = ModelVersions(versions_dir)
    assert out['version'] == 1 and versions.target() == 1 and versions.versions() == [0, 1]
    assert versions.active() == 0  # only the indexer moves ACTIVE
    meta = versions.meta(1)
    assert meta['config']['loss'] == 'mnr' and meta['examples'] == 2 and meta['source'] == str(train)
    assert meta['pooling'] == 'cls' and versions.pooling(1) == 'cls'  # saved with the version it trained
    assert out['final_loss'] < out['epoch_losses'][0]
    before, after = _margins('base'), _margins(versions.model_path(1))
    assert (after > before).all(), (before, after)
    assert (after > 0).all(), after


def test_training_data_problems_are_named(tmp_path):
    only_rejected = [TrainingExample('q', [], ['d'])]
    with pytest.raises(ValueError, match='no accepted match'):
        train_encoder(only_rejected, loss='mnr')
    with pytest.raises(ValueError, match=r"parameter 'loss' must be one of \('cosine', 'mnr'\), got 'triplet'"):
        train_encoder(EXAMPLES, loss='triplet')
    with pytest.raises(ValueError, match="parameter 'epochs' must be an integer between 1 and 1000"):
        train_encoder(EXAMPLES, epochs=0)
    with pytest.raises(FileNotFoundError, match='no training data'):
        load_training_data(tmp_path / 'missing.csv')
    assert load_training_data(_rows(EXAMPLES)) == EXAMPLES


# ---- the pooling saved with each version ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def mean_versions(tmp_path_factory):
    """Version 1 = the base encoder's weights, saved as trained with mean pooling."""
    versions = ModelVersions(tmp_path_factory.mktemp('embedder'))
    assert versions.save_new(load_encoder('base'), load_tokenizer('base'), {'note': 'test'}, pooling='mean') == 1
    return versions


def test_a_version_embeds_with_its_saved_pooling_and_refuses_another(mean_versions):
    path = mean_versions.model_path(1)
    assert json.loads((path / 'version.json').read_text())['pooling'] == 'mean'
    assert mean_versions.pooling(1) == saved_pooling(path) == 'mean' and mean_versions.pooling(0) == 'cls'
    texts = [e.query for e in EXAMPLES]
    by_version = Embedder(path)  # pooling not given: the version's own
    assert by_version.pooling == 'mean'
    np.testing.assert_allclose(by_version.embed_texts(texts), Embedder('base', pooling='mean').embed_texts(texts),
                               atol=1e-6)
    assert Embedder(path, pooling='mean').pooling == 'mean'
    with pytest.raises(ValueError, match=r"trained with pooling='mean' .* cannot embed with pooling='cls'"):
        Embedder(path, pooling='cls')  # what the Embedder/Indexer Executors do when configured otherwise
    # version 0, the shipped embedder, embeds with its saved 'cls'
    assert Embedder(mean_versions.model_path(0)).pooling == 'cls'
    with pytest.raises(ValueError, match=r"shipped-embedder was trained with pooling='cls' .* pooling='mean'"):
        Embedder(mean_versions.model_path(0), pooling='mean')


def test_finetuning_from_a_version_refuses_another_pooling(mean_versions):
    with pytest.raises(ValueError, match="trained with pooling='mean'"):
        train_encoder(EXAMPLES, model=mean_versions.model_path(1), pooling='cls', epochs=1)
    with pytest.raises(ValueError, match="meta says pooling='cls' but pooling='mean'"):
        mean_versions.save_new(None, None, {'pooling': 'cls'}, pooling='mean')
    with pytest.raises(ValueError, match='pooling must be one of'):
        mean_versions.save_new(None, None, pooling='max')
    assert mean_versions.versions() == [0, 1]  # nothing was written by the refused saves


def test_saved_pooling_of_older_and_damaged_version_files(tmp_path):
    old = tmp_path / 'v0001'
    old.mkdir()
    assert saved_pooling(old) is None and saved_pooling('base') is None  # no version.json / the base model
    (old / 'version.json').write_text(json.dumps({'version': 1, 'config': {'pooling': 'mean'}}))
    assert saved_pooling(old) == 'mean'  # written by the finetuner before the pooling was saved on its own
    (old / 'version.json').write_text('{not json')
    with pytest.raises(ValueError, match='cannot read the embedder version file .*version.json'):
        saved_pooling(old)
