"""covidqa.runtime.child (work in a child process that exits when done) and covidqa.runtime.torch_gate (torch kept out of serving
processes): real child processes, real imports."""
import os
import subprocess
import sys
import threading
import time

import pytest

from covidqa.runtime.child import ChildCancelled, ChildError, run_in_child, with_torch
from tests.helpers import REPO


def test_result_and_progress_come_back_from_another_process():
    seen = []
    result = run_in_child('tests.helpers:count_with_progress', {'steps': 3}, progress_arg='callback',
                          on_progress=seen.append)
    assert result['steps'] == 3 and result['pid'] != os.getpid()
    assert seen == [{'step': 1, 'steps': 3}, {'step': 2, 'steps': 3}, {'step': 3, 'steps': 3}]


def test_an_exception_in_the_child_is_raised_with_its_class_names():
    with pytest.raises(ChildError) as caught:
        run_in_child('json:loads', {'s': '{not json'})
    assert caught.value.is_a('JSONDecodeError') and caught.value.is_a('ValueError')
    assert not caught.value.is_a('KeyError')
    with pytest.raises(ChildError, match='ModuleNotFoundError'):
        run_in_child('covidqa.no_such_module:f')


def test_stop_event_terminates_the_child():
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(ChildCancelled):
        run_in_child('tests.helpers:sleep_for', {'seconds': 60}, stop_event=stop)
    assert time.monotonic() - started < 20


LEAN = '''
import sys
from covidqa.runtime.torch_gate import block_torch, torch_blocked, require_torch
assert block_torch() and torch_blocked()
import jina  # docarray tries import torch: it must carry on without it
import numpy as np
from covidqa.docs import DocList, QADoc
docs = DocList[QADoc]([QADoc(text='q', embedding=np.ones(3, dtype=np.float32))])
assert float(docs[0].embedding.sum()) == 3.0
from covidqa.text.tokenization import TextTokenizer
assert len(TextTokenizer('base').encode(['how does it spread'])[0]) > 2
from covidqa.runtime.child import with_torch
assert with_torch('covidqa.runtime.torch_gate:torch_blocked') is False  # ran in a child, where torch is importable
try:
    require_torch('the test backend')
except RuntimeError as error:
    assert 'the test backend needs torch' in str(error) and 'onnx' in str(error)
else:
    raise AssertionError('require_torch did not refuse')
print('torch' in sys.modules and sys.modules['torch'] is not None)
'''


def test_a_blocked_process_serves_without_torch_and_sends_torch_work_to_a_child():
    env = {k: v for k, v in os.environ.items() if k != 'COVIDQA_TORCH'}
    env['PYTHONPATH'] = str(REPO)
    out = subprocess.run([sys.executable, '-c', LEAN], capture_output=True, text=True, timeout=240, env=env,
                         cwd=str(REPO))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == 'False'


def test_here_when_torch_is_allowed():
    assert with_torch('covidqa.runtime.torch_gate:torch_blocked') is False


def test_flow_launcher_lets_torch_in_only_for_a_torch_backend(tmp_path):
    from client.flow import wants_torch

    onnx = tmp_path / 'onnx.yml'
    onnx.write_text('jtype: Flow\nexecutors:\n  - name: e\n    uses_with: {backend: onnx-int8}\n  - name: t\n')
    torch_flow = tmp_path / 'torch.yml'
    torch_flow.write_text('jtype: Flow\nexecutors:\n  - name: e\n    uses_with: {backend: torch}\n')
    assert not wants_torch(['--uses', str(onnx)])
    assert wants_torch(['--uses', str(torch_flow)])
    assert not wants_torch([]) and not wants_torch(['--uses', str(tmp_path / 'missing.yml')])


def test_loss_names_without_torch_match_the_losses():
    from covidqa.feedback.finetune import LOSS_NAMES
    from covidqa.training.losses import LOSSES

    assert sorted(LOSS_NAMES) == sorted(LOSSES)
