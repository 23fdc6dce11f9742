"""The pure span decoder (covidqa/reader/decoding.py) on hand-made logits: no model, no tokenizer.

The window is ``[CLS] q q [SEP] The virus spreads by droplets [SEP] [PAD] [PAD]`` with the character offsets of
its five context tokens; logits are -10 everywhere except where a test puts something else.
"""
import numpy as np
import pytest

from covidqa.reader.decoding import (
    SpanCandidate,
    decode_spans,
    decode_window,
    drop_overlapping,
    question_normalisers,
    window_probabilities,
)

CONTEXT = 'The virus spreads by droplets'
#            CLS  q1   q2  SEP  The    virus   spreads  by       droplets SEP  PAD  PAD
OFFSETS = np.array([[-1, -1], [-1, -1], [-1, -1], [-1, -1], [0, 3], [4, 9], [10, 17], [18, 20], [21, 29],
                    [-1, -1], [-1, -1], [-1, -1]], dtype=np.int64)
MASK = np.array([False] * 4 + [True] * 5 + [False] * 3)
CONTEXT_TOKENS = list(range(4, 9))


def logits(start=None, end=None, base=-10.0):
    """(start_logits, end_logits) of the 12-token window, ``base`` except at the given {position: logit}."""
    s, e = np.full(len(MASK), base, np.float32), np.full(len(MASK), base, np.float32)
    for pos, value in (start or {}).items():
        s[pos] = value
    for pos, value in (end or {}).items():
        e[pos] = value
    return s, e


def own_normaliser(s, e):
    ns, ne = question_normalisers([(s, e)], [MASK], [0], 1)
    return float(ns[0]), float(ne[0])


def decode(s, e, **kwargs):
    kwargs.setdefault('top_k', 100)
    kwargs.setdefault('max_answer_length', 30)
    return decode_window(s, e, OFFSETS, MASK, own_normaliser(s, e), **kwargs)


def brute_force(s, e, max_answer_length):
    """Every allowed (start token, end token) and its score under the window's softmax, best first."""
    p_s, p_e = window_probabilities(s, e, MASK)
    spans = [(float(p_s[i] * p_e[j]), i, j) for i in CONTEXT_TOKENS for j in CONTEXT_TOKENS
             if 0 <= j - i < max_answer_length]
    return sorted(spans, key=lambda x: (-x[0], x[1], x[2]))


def test_best_span_is_picked_with_its_characters_and_score():
    s, e = logits({5: 8.0}, {6: 8.0})
    found, no_answer = decode(s, e, window=3, context=2)
    best = found[0]
    assert isinstance(best, SpanCandidate)
    assert (best.start_token, best.end_token) == (5, 6)
    assert CONTEXT[best.start:best.end] == 'virus spreads'
    assert (best.window, best.context, best.key) == (3, 2, (2, 4, 17))
    p_s, p_e = window_probabilities(s, e, MASK)
    assert best.score == pytest.approx(p_s[5] * p_e[6], rel=1e-12)
    assert best.window_score == pytest.approx(best.score, rel=1e-12)  # one window: its own softmax
    assert best.score > 0.99 and no_answer == pytest.approx(p_s[0] * p_e[0]) and no_answer < 1e-6


def test_end_before_start_is_refused():
    s, e = logits({7: 9.0}, {5: 9.0})  # the most likely start ('by') comes after the most likely end ('virus')
    found, _ = decode(s, e)
    assert found and all(c.start_token <= c.end_token for c in found)
    assert (7, 5) not in {(c.start_token, c.end_token) for c in found}
    assert all(c.end > c.start for c in found)
    # the best valid spans use one of the two peaks, never both
    best = found[0]
    assert best.start_token == 7 or best.end_token == 5


def test_max_answer_length_is_respected():
    s, e = logits({4: 8.0}, {8: 8.0})  # 'The ... droplets': 5 tokens
    long_ok, _ = decode(s, e, max_answer_length=5)
    assert (long_ok[0].start_token, long_ok[0].end_token) == (4, 8)
    assert CONTEXT[long_ok[0].start:long_ok[0].end] == CONTEXT
    short, _ = decode(s, e, max_answer_length=4)
    assert short and all(c.end_token - c.start_token < 4 for c in short)
    assert (4, 8) not in {(c.start_token, c.end_token) for c in short}
    single, _ = decode(s, e, max_answer_length=1)
    assert single and all(c.start_token == c.end_token for c in single)
    assert {CONTEXT[c.start:c.end] for c in single} == set(CONTEXT.split())


def test_spans_outside_the_context_are_never_returned():
    # huge logits on the question tokens, the separators and the padding: none of them may start or end a span
    outside = {1: 20.0, 2: 20.0, 3: 20.0, 9: 20.0, 10: 20.0, 11: 20.0}
    s, e = logits(outside, outside)
    found, _ = decode(s, e)
    assert len(found) == len(brute_force(s, e, 30)) == 15  # every context span, nothing else
    for c in found:
        assert c.start_token in CONTEXT_TOKENS and c.end_token in CONTEXT_TOKENS
        assert 0 <= c.start < c.end <= len(CONTEXT)
    # the outside logits take no probability either: the window's softmax only covers [CLS] + context
    p_s, p_e = window_probabilities(s, e, MASK)
    assert p_s[~MASK][1:].max() == 0.0 and p_e[~MASK][1:].max() == 0.0
    assert abs(p_s.sum() - 1.0) < 1e-12


def test_no_answer_threshold_within_the_window():
    s, e = logits({0: 6.0, 5: 6.0}, {0: 6.0, 6: 6.0})  # [CLS] and 'virus spreads' equally likely
    everything, no_answer = decode(s, e)
    p_s, p_e = window_probabilities(s, e, MASK)
    assert no_answer == pytest.approx(float(p_s[0] * p_e[0]))
    best = everything[0]
    assert CONTEXT[best.start:best.end] == 'virus spreads'
    kept, _ = decode(s, e, no_answer_threshold=best.window_score / 2)
    assert [c.key for c in kept] == [best.key]  # only the best span reaches half its probability
    none, no_answer_again = decode(s, e, no_answer_threshold=best.window_score * 1.01)
    assert none == [] and no_answer_again == no_answer
    # decode_spans: no candidate left, the question's no-answer probability is that of its window
    decoded = decode_spans([(s, e)], [OFFSETS], [MASK], no_answer_threshold=0.9)
    assert decoded.candidates == [] and decoded.no_answer == pytest.approx(no_answer)


def test_top_k_keeps_the_best_spans_best_first():
    rng = np.random.default_rng(0)
    s, e = rng.normal(0, 2, len(MASK)).astype(np.float32), rng.normal(0, 2, len(MASK)).astype(np.float32)
    reference = brute_force(s, e, 30)
    for top_k in (1, 3, 7, 15, 50):
        found, _ = decode(s, e, top_k=top_k)
        assert len(found) == min(top_k, 15)
        scores = [c.score for c in found]
        assert scores == sorted(scores, reverse=True)
        assert [(c.start_token, c.end_token) for c in found] == [(i, j) for _, i, j in reference[:top_k]]
        assert scores == pytest.approx([x[0] for x in reference[:top_k]], rel=1e-9)


def test_offsets_map_every_candidate_to_its_characters():
    rng = np.random.default_rng(1)
    s, e = rng.normal(0, 1, len(MASK)).astype(np.float32), rng.normal(0, 1, len(MASK)).astype(np.float32)
    found, _ = decode(s, e)
    words = CONTEXT.split()
    for c in found:
        assert CONTEXT[c.start:c.end] == ' '.join(words[c.start_token - 4:c.end_token - 3])
        assert (c.start, c.end) == (OFFSETS[c.start_token, 0], OFFSETS[c.end_token, 1])


def test_windows_share_one_softmax_and_merge_by_context_and_characters():
    # window 0 and window 1 both hold 'virus spreads' of context 0 (overlap); window 2 is another context
    s0, e0 = logits({5: 5.0}, {6: 5.0})
    s1, e1 = logits({5: 7.0}, {6: 7.0})
    s2, e2 = logits({4: 6.0}, {4: 6.0})
    windows = [(s0, e0), (s1, e1), (s2, e2)]
    decoded = decode_spans(windows, [OFFSETS] * 3, [MASK] * 3, top_k=5, contexts=[0, 0, 1], windows=[10, 11, 12])
    keys = [c.key for c in decoded.candidates]
    assert len(keys) == len(set(keys))  # one candidate per (context, start, end)
    best = decoded.candidates[0]
    assert best.key == (0, 4, 17) and best.window == 11  # the window that scores it best wins
    assert decoded.candidates[1].key == (1, 0, 3) and decoded.candidates[1].window == 12
    # question-wide scores: one softmax over all three windows, so distinct spans sum to at most 1...
    assert sum(c.score for c in decoded.candidates) <= 1.0 + 1e-9
    ns, ne = question_normalisers(windows, [MASK] * 3, [0, 0, 0], 1)
    assert best.score == pytest.approx(np.exp(7.0 - ns[0]) * np.exp(7.0 - ne[0]), rel=1e-6)
    # ...while the within-window probability is the window's own
    p_s, p_e = window_probabilities(s1, e1, MASK)
    assert best.window_score == pytest.approx(p_s[5] * p_e[6]) and best.window_score > best.score
    # the question's no-answer probability is the smallest of its windows'
    window_no_answers = [decode(s, e)[1] for s, e in windows]
    assert decoded.no_answer == pytest.approx(min(window_no_answers))
    # an explicit normaliser (a question with more windows elsewhere) lowers every question-wide score
    wider = decode_spans(windows, [OFFSETS] * 3, [MASK] * 3, (float(ns[0]) + 1.0, float(ne[0])), top_k=5,
                         contexts=[0, 0, 1])
    assert wider.candidates[0].score == pytest.approx(best.score / np.e, rel=1e-9)


def test_a_window_without_context_tokens_only_gives_its_no_answer():
    s, e = logits({0: 3.0}, {0: 3.0})
    empty_mask = np.zeros(len(MASK), dtype=bool)
    found, no_answer = decode_window(s, e, OFFSETS, empty_mask, (3.0, 3.0), top_k=5, max_answer_length=10)
    assert found == [] and no_answer == pytest.approx(1.0)
    with pytest.raises(ValueError, match='2 logits but 1 offsets'):
        decode_spans([(s, e), (s, e)], [OFFSETS], [MASK, MASK])


def test_threshold_compares_the_in_window_probability_not_the_question_wide_score():
    """More windows spread the question-wide probabilities thinner; a span that passes within its own window stays."""
    s, e = logits({5: 6.0}, {6: 6.0})
    crowd = [logits({4: 6.0}, {4: 6.0}) for _ in range(5)]
    alone = decode_spans([(s, e)], [OFFSETS], [MASK], top_k=5).candidates[0]
    threshold = alone.score / 2
    crowded = decode_spans([(s, e)] + crowd, [OFFSETS] * 6, [MASK] * 6, top_k=5, no_answer_threshold=threshold,
                           contexts=[0, 1, 2, 3, 4, 5])
    kept = [c for c in crowded.candidates if c.key == (0, 4, 17)]
    assert kept and kept[0].score < threshold <= kept[0].window_score


def test_drop_overlapping_keeps_the_better_of_near_copies_like_haystack():
    text = 'the river in Maine'
    river_in_maine, the_river, river_in, in_maine = (0, 0, 18), (0, 0, 9), (0, 0, 12), (0, 10, 18)
    assert text[0:9] == 'the river' and text[10:18] == 'in Maine'
    # "the river" lies wholly inside the better "the river in Maine": dropped; the same span in context 1 stays
    assert drop_overlapping([river_in_maine, the_river, (1, 0, 9)], 0.01) == [0, 2]
    # "in Maine" shares 2 of its 8 characters (25%) with the better "the river in"
    assert drop_overlapping([river_in, in_maine], 0.25) == [0, 1]
    assert drop_overlapping([river_in, in_maine], 0.24) == [0]
    # the fraction of the *better* span counts too: a long span over a short better one
    assert drop_overlapping([(0, 4, 9), (0, 0, 100)], 0.5) == [0]
    # touching is not overlapping; 1.0 keeps everything; limit stops after that many kept
    assert drop_overlapping([(0, 0, 3), (0, 3, 9)], 0.0) == [0, 1]
    assert drop_overlapping([river_in_maine, the_river, river_in], 1.0) == [0, 1, 2]
    assert drop_overlapping([river_in_maine, the_river, (1, 0, 9), (2, 0, 1)], 0.01, limit=2) == [0, 2]
    assert drop_overlapping([], 0.01) == []
