"""Executors take their settings from uses_with through the options models: jina sees them in the signature (no
"arguments not defined" warning for a right key), and a key no Executor knows stops the start, naming it."""
import pytest
from jina.jaml.parsers.base import BaseLegacyParser  # what compares uses_with keys with __init__

from covidqa.embedding.options import EmbedOptions
from covidqa.feedback.options import FinetuneOptions
from covidqa.index.options import SearchOptions
from covidqa.reader.options import ReadOptions
from executors._common import refuse_unknown_settings
from executors.embedder import Embedder
from executors.finetuner import Finetuner
from executors.indexer import Indexer
from executors.merger import MatchMerger
from executors.reader import Reader
from executors.tokenizer import Tokenizer


@pytest.mark.parametrize('executor, options', [
    (Reader, ReadOptions), (Indexer, SearchOptions), (MatchMerger, SearchOptions), (Embedder, EmbedOptions),
    (Tokenizer, EmbedOptions), (Finetuner, FinetuneOptions)])
def test_jina_sees_every_setting_in_the_signature(executor, options):
    assert set(options.model_fields) <= BaseLegacyParser._get_all_arguments(executor)


def test_a_misspelt_setting_is_refused_by_name():
    refuse_unknown_settings('Reader', {'metas': {}, 'requests': {}, 'runtime_args': {}})  # jina's own: fine
    with pytest.raises(ValueError, match=r"Reader: unknown setting\(s\) \['max_seq_len'\] in uses_with"):
        refuse_unknown_settings('Reader', {'metas': {}, 'max_seq_len': 256})
    with pytest.raises(ValueError, match="'max_seq_length' must be an integer between 32 and 512"):
        ReadOptions.pop_from({'max_seq_length': 8})
