"""The lean Flow (issue 19) on a real Flow: no process of a Flow that serves with ONNX Runtime maps torch, before or
after a feedback round; the round trains in a child process that exits, so the Flow's memory does not keep the
training's; searches keep their results through the routing that skips Executors."""
import time
from pathlib import Path

import pytest

from client.flowctl import FlowProcess
from client.procinfo import memory_of
from covidqa.docs import DocList, MatchDoc, QADoc
from toydata import generate_qa

pytestmark = pytest.mark.slow


def torch_mapped(pid: int) -> bool:
    try:
        return 'libtorch_cpu' in Path(f'/proc/{pid}/maps').read_text()
    except OSError:  # the process ended meanwhile
        return False


def pss_bytes(pids) -> int:
    """PSS summed over ``pids`` (shared pages split between the processes that map them)."""
    return memory_of(pids)[1]


def results(response) -> dict:
    return next(iter(response[0].parameters['__results__'].values()))


def test_no_torch_in_the_flow_and_a_feedback_round_leaves_no_memory_behind(tmp_path, faq_csv):
    docs = generate_qa(faq_csv)[:40]
    overrides = {'finetuner': {'train_every': 1000, 'epochs': 2}}
    with FlowProcess(home=tmp_path, overrides=overrides) as flow:
        client = flow.client()
        client.post('/index', docs)
        answered = client.post('/answer', DocList[QADoc]([QADoc(text=docs[3].text)]), return_type=DocList[QADoc],
                               parameters={'return_matches': True})
        assert answered[0].matches[0].id == docs[3].id and [a.context_id for a in answered[0].answers
                                                            if not a.no_answer] == [docs[3].id]
        serving = flow.pids()
        assert len(serving) >= 7  # the jina CLI, the gateway and the Executors
        assert [pid for pid in serving if torch_mapped(pid)] == []
        pss_before = pss_bytes(serving)

        for doc in docs[:6]:  # labeler-style: accept the entry itself, reject the rest
            found = client.post('/search', DocList[QADoc]([QADoc(text=doc.text)]), parameters={'limit': 5},
                                return_type=DocList[QADoc])[0]
            assert found.matches[0].id == doc.id
            found.matches = DocList[MatchDoc]([MatchDoc(id=m.id, label='accepted' if m.id == doc.id else 'rejected')
                                               for m in found.matches])
            client.post('/feedback', DocList[QADoc]([found]))
        trained = results(client.post('/train', DocList[QADoc](), parameters={'wait': True, 'timeout': 600},
                                      return_responses=True))
        assert trained['finished'] and trained['last_error'] is None, trained
        assert trained['target_version'] == 1 and trained['progress']['steps'] > 0
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # the indexer re-embeds with v1 (its ONNX export: a child process)
            state = results(client.post('/count', DocList[QADoc](), return_responses=True))
            if state['model_version'] == 1 and not state['reembedding']:
                break
            time.sleep(1)
        assert state['model_version'] == 1, state
        found = client.post('/search', DocList[QADoc]([QADoc(text=docs[2].text)]), return_type=DocList[QADoc])[0]
        assert found.matches[0].id == docs[2].id and found.model_version == 1

        after = flow.pids()
        assert sorted(after) == sorted(serving)  # the training and export children have exited
        assert [pid for pid in after if torch_mapped(pid)] == []
        pss_after = pss_bytes(after)
        # training in the finetuner's process used to keep ~1.5 GB there; now only the new model version's
        # sessions (embedder and the indexer's re-embedding copy) and the arenas of the searches remain
        assert pss_after - pss_before < 400 * 2**20, (pss_before >> 20, pss_after >> 20)
