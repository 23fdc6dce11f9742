"""The labeler page in a real headless Chromium against the whole Flow (gRPC + HTTP gateway with the labeler page).

The service runs with a write token (``COVIDQA_TOKEN``): the page asks for it once, on the first refused write, and
sends it from then on. It searches a question, labels the matches with the keyboard (digits toggle, space submits), checks the labels in the
label store and in ``/status`` (over gRPC too), then clicks "Save model" and waits until the new embedder version is
trained, targeted and re-indexed (the page's version badge follows).

Needs Debian's ``chromium`` (``make browser``; never a downloaded browser build) and the Playwright python package.
``COVIDQA_SCREENSHOTS=DIR`` also copies the screenshots there.
"""
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from client.flowctl import FLOW_YML, FlowProcess
from covidqa.docs import DocList, QADoc
from covidqa.feedback.store import FeedbackStore
from toydata import generate_qa

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']
GATEWAY = {'uses': 'CovidQAGateway', 'py_modules': ['executors/gateway/__init__.py']}
FINETUNER = {'name': 'finetuner', 'uses': 'Finetuner', 'py_modules': ['executors/finetuner.py'], 'host': '127.0.0.1',
             'allow_concurrent': True}
REPO = Path(__file__).resolve().parents[2]
TOKEN = 'labeler-test-token'

playwright_api = pytest.importorskip('playwright.sync_api')
if not Path(CHROMIUM).exists():
    pytest.skip(f'{CHROMIUM} not installed (make browser)', allow_module_level=True)


def labeler_flow_yml(target: Path) -> Path:
    """flow.yml, with the labeler gateway and the finetuner added if the file does not have them yet, module paths
    absolute, and a quick training configuration for the finetuner."""
    config = yaml.safe_load(FLOW_YML.read_text())
    config.setdefault('gateway', dict(GATEWAY))
    executors = config['executors']
    if not any(e.get('uses') == 'Finetuner' for e in executors):
        executors.append(dict(FINETUNER))
    for e in executors:
        if e.get('uses') == 'Finetuner':
            e.setdefault('allow_concurrent', True)
            e.setdefault('uses_with', {}).update(train_every=1000, epochs=1, num_threads=2)
    for part in [config['gateway'], *executors]:
        part['py_modules'] = [str((REPO / m).resolve()) for m in part.get('py_modules', [])]
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def http_post(flow, endpoint, body):
    request = urllib.request.Request(f'{flow.http_url}{endpoint}', data=json.dumps(body).encode(),
                                     headers={'Content-Type': 'application/json'}, method='POST')
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def finetuner_results(parameters):
    results = parameters['__results__']
    return next(v for k, v in results.items() if k.startswith('finetuner'))


@pytest.fixture(scope='module')
def flow(tmp_path_factory, faq_csv):
    home = tmp_path_factory.mktemp('labeler-home')
    with FlowProcess(home=home, flow_yml=labeler_flow_yml(home / 'labeler-flow.yml'),
                     env={'COVIDQA_TOKEN': TOKEN}) as running:
        running.client().post('/index', generate_qa(faq_csv)[:60], request_size=64,
                              metadata=(('authorization', f'Bearer {TOKEN}'),))
        yield running


def shot(page, tmp_path, name):
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get('COVIDQA_SCREENSHOTS'):
        out = Path(os.environ['COVIDQA_SCREENSHOTS'])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, out / name)
    return path


def test_label_a_round_in_the_browser_and_save_the_model(flow, tmp_path):
    with urllib.request.urlopen(f'{flow.http_url}/labeler', timeout=30) as response:
        assert response.status == 200 and b'COVID-19 QA' in response.read()

    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={'width': 1360, 'height': 900})
            errors, dialogs = [], []
            page.on('pageerror', lambda exc: errors.append(str(exc)))

            def give_token(dialog):
                dialogs.append(dialog.message)
                dialog.accept(TOKEN)

            page.on('dialog', give_token)
            page.goto(f'{flow.http_url}/labeler')
            page.wait_for_function("document.getElementById('model-version').textContent === 'v0'")

            # search: type, Enter; the top-5 matches appear as cards
            page.fill('#query', 'How is the coronavirus transmitted between people?')
            page.press('#query', 'Enter')
            page.wait_for_selector('.card >> nth=4')
            cards = page.locator('.card')
            assert cards.count() == 5
            ids = [cards.nth(i).get_attribute('data-id') for i in range(5)]

            # keyboard: 1 accepts the first, 2 twice rejects the second, 3 three times is back to unmarked
            page.keyboard.press('1')
            page.keyboard.press('2')
            page.keyboard.press('2')
            for _ in range(3):
                page.keyboard.press('3')
            classes = [cards.nth(i).get_attribute('class') for i in range(3)]
            assert 'accepted' in classes[0] and 'rejected' in classes[1]
            assert 'accepted' not in classes[2] and 'rejected' not in classes[2]
            page.uncheck('#rest-rejected')  # only what was marked is sent; the rest stays unlabeled
            shot(page, tmp_path, 'labeler-labeled.png')

            page.keyboard.press(' ')  # submit
            page.wait_for_function("document.getElementById('message').textContent.startsWith('Saved')")
            assert page.inner_text('#message').startswith('Saved 1 accepted and 1 rejected')
            assert len(dialogs) == 1 and '/feedback' in dialogs[0]  # asked once, on the first write
            page.wait_for_function("document.getElementById('n-pos').textContent === '1' && "
                                   "document.getElementById('n-neg').textContent === '1'")

            # the labels arrived: in the durable store, and in /status over gRPC
            store = FeedbackStore(flow.home / 'feedback')
            rows = store.rows()
            assert {(r['document_id'], r['label']) for r in rows} == {(ids[0], 'accepted'), (ids[1], 'rejected')}
            assert rows[0]['query'] == 'How is the coronavirus transmitted between people?'
            response = flow.client().post('/status', DocList[QADoc](), return_responses=True)
            status = finetuner_results(response[0].parameters)
            assert (status['positive'], status['negative']) == (1, 1)

            # the page shows the server's refusal of bad feedback (a query never searched)
            message = page.evaluate("""() => call('/feedback', [{id: 'never-searched', text: 'x',
                matches: [{id: 'x', label: 'accepted'}]}], {}).then(() => 'ok', e => e.message)""")
            assert 'never searched' in message

            # "Save model": a round trains on the labels, TARGET moves, the indexer re-embeds, ACTIVE follows
            page.click('#save-btn')
            page.wait_for_function("document.getElementById('message').textContent.startsWith('Model saved')",
                                   timeout=300_000)
            assert 'version 1' in page.inner_text('#message')
            page.wait_for_function("document.getElementById('version-badge').textContent === 'model v1'",
                                   timeout=180_000)
            shot(page, tmp_path, 'labeler-saved.png')
            assert not errors, errors
            assert len(dialogs) == 1, dialogs  # the token was kept: "Save model" did not ask again
        finally:
            browser.close()

    status = finetuner_results(http_post(flow, '/status', {'data': [], 'parameters': {}})['parameters'])
    assert status['target_version'] == status['active_version'] == 1 and status['last_loss'] is not None
    assert (flow.home / 'models' / 'embedder' / 'v0001' / 'config.json').is_file()
    # searches keep working on the new version, over both protocols
    found = flow.client().post('/search', DocList[QADoc]([QADoc(text='Should I wear a mask?')]),
                               parameters={'limit': 3}, return_type=DocList[QADoc])
    assert len(found[0].matches) == 3 and found[0].model_version == 1
    body = http_post(flow, '/search', {'data': [{'id': 'qq', 'text': 'Should I wear a mask?'}],
                                       'parameters': {'limit': 2}})
    assert len(body['data'][0]['matches']) == 2


def test_ask_on_the_page_mark_answers_and_the_labels_are_stored_and_exported(flow, tmp_path):
    from covidqa.feedback.answers import AnswerFeedback

    with urllib.request.urlopen(f'{flow.http_url}/', timeout=30) as response:
        assert response.status == 200 and b'COVID-19 QA' in response.read()
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={'width': 390, 'height': 844})  # a phone
            errors, dialogs = [], []
            page.on('pageerror', lambda exc: errors.append(str(exc)))
            page.on('dialog', lambda dialog: (dialogs.append(dialog.message), dialog.accept(TOKEN)))
            page.goto(f'{flow.http_url}/')
            assert page.get_attribute('a[href="/labeler"]', 'href') == '/labeler'  # the two pages link
            page.fill('#question', 'How does the virus spread?')  # the keyboard alone: type, Enter
            page.press('#question', 'Enter')
            page.wait_for_selector('.answer')
            card = page.locator('.answer').first
            shown = card.locator('h2').inner_text()
            assert card.locator('.passage mark').inner_text() == shown  # highlighted inside its passage
            confidence = card.locator('.confidence').inner_text()
            assert '%' in confidence and ('right' in confidence or 'unsure' in confidence), confidence
            assert card.locator('.source .kind').inner_text() in ('FAQ', 'DOCUMENT', 'document')
            assert page.evaluate('document.documentElement.scrollWidth') <= 390  # nothing wider than the phone
            shot(page, tmp_path, 'ask-answered.png')

            card.locator('.right-btn').click()  # 👍: the first write asks for the token, once
            page.wait_for_selector('.answer >> nth=0 >> .done')
            assert len(dialogs) == 1 and '/answer_feedback' in dialogs[0]
            assert card.locator('.right-btn').is_disabled()  # one verdict an answer: a double click sends one
            page.press('#question', 'Enter')  # asked again: a new reply, to mark its first answer
            page.wait_for_function("document.querySelector('.answer') && !document.querySelector('.answer .done')")
            card = page.locator('.answer').first
            # "the selected text is the right answer": select the passage's first word
            page.evaluate("""() => {
                const box = document.querySelector('.answer .passage');
                const walk = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
                let node = walk.nextNode();
                while (node && !node.textContent.trim()) node = walk.nextNode();
                const text = node.textContent, start = text.search(/\\S/);
                const range = document.createRange();
                range.setStart(node, start); range.setEnd(node, start + text.slice(start).search(/\\s|$/));
                const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
            }""")
            selected = page.evaluate('window.getSelection().toString()')
            card.locator('.mark-btn').click()
            page.wait_for_function("document.querySelector('.answer .actions span').textContent.includes('right "
                                   "answer is saved')")
            assert len(dialogs) == 1 and not errors, (dialogs, errors)
            shot(page, tmp_path, 'ask-marked.png')
        finally:
            browser.close()

    labels = AnswerFeedback(flow.home / 'feedback').labels()
    assert [label['verdict'] for label in labels] == ['right', 'wrong']
    assert labels[0]['answer']['answer'] == shown and labels[1]['correction']['text'] == selected.strip()
    headers = {'Content-Type': 'application/json', 'Authorization': f'Bearer {TOKEN}'}

    def post(endpoint, body):
        request = urllib.request.Request(f'{flow.http_url}{endpoint}', data=json.dumps(body).encode(),
                                         headers=headers, method='POST')
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b'{}')

    status, body = post('/export_feedback', {'data': [], 'parameters': {}})
    assert status == 200, body
    exported = next(v for k, v in body['parameters']['__results__'].items() if k.startswith('reader'))
    answers = [a['text'] for d in exported['squad']['data'] for p in d['paragraphs'] for q in p['qas']
               for a in q['answers']]
    assert sorted(answers) == sorted([shown, selected.strip()])
    query_id = labels[0]['query_id']
    for parameters, message in [
        ({'verdict': 'wrong', 'correct_context_id': labels[1]['correction']['context_id'], 'correct_start': 0,
          'correct_end': 10 ** 6}, 'are outside passage'),
        ({'verdict': 'right', 'answer': 7}, 'answer 7 was not shown'),
        ({'verdict': 'sure'}, "parameter 'verdict' must be one of"),
    ]:
        status, body = post('/answer_feedback', {'data': [{'id': query_id}], 'parameters': parameters})
        assert status == 400 and message in json.dumps(body['detail']), body
    status, body = post('/answer_feedback', {'data': [{'id': 'never-answered'}], 'parameters': {'verdict': 'right'}})
    assert status == 400 and 'was never answered' in json.dumps(body['detail'])
    status, body = post('/eval_feedback', {'data': [], 'parameters': {}})
    accuracy = next(v for k, v in body['parameters']['__results__'].items() if k.startswith('reader'))
    assert (accuracy['labels'], accuracy['right'], accuracy['accuracy']) == (2, 1, 0.5)  # nothing stored was lost
