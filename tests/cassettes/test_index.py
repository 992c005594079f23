"""Tests for tapeproxy/cassettes/index.py: ordered repeats and nearest-miss explanations."""

from __future__ import annotations

import threading

from tapeproxy.cassettes.index import ReplayIndex, canonical_of, differences
from tapeproxy.cassettes.key import canonical_request
from tapeproxy.cassettes.model import Body, MatchRules
from tests.cassettes.samples import chat_request, keyed, sample_cassette

RULES = MatchRules()


def test_the_nth_identical_request_gets_the_nth_answer_then_the_last_repeats() -> None:
    cassette = sample_cassette()
    index = ReplayIndex(cassette.interactions)
    key = cassette.interactions[0].key
    assert key in index and len(index) == 5
    statuses = [index.next(key).response.status for _ in range(4)]
    assert statuses == [200, 429, 429, 429]


def test_repeat_error_policy_makes_extra_requests_misses() -> None:
    cassette = sample_cassette()
    index = ReplayIndex(cassette.interactions, repeat="error")
    key = cassette.interactions[0].key
    assert index.next(key) is cassette.interactions[0]
    assert index.next(key) is cassette.interactions[1]
    assert index.next(key) is None
    assert index.next("0" * 64) is None


def test_unused_lists_what_no_request_used() -> None:
    cassette = sample_cassette()
    index = ReplayIndex(cassette.interactions)
    assert index.unused() == [0, 1, 2, 3, 4]
    index.next(cassette.interactions[2].key)
    index.next(cassette.interactions[0].key)
    assert index.unused() == [1, 3, 4]


def test_threads_each_get_their_own_answer() -> None:
    cassette = sample_cassette()
    index = ReplayIndex(cassette.interactions, repeat="error")
    key = cassette.interactions[0].key
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(index.next(key))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(id(x) for x in got if x is not None) == sorted(
        id(x) for x in cassette.interactions[:2]
    )
    assert got.count(None) == 2


def test_nearest_names_the_field_that_differs() -> None:
    cassette = sample_cassette()
    index = ReplayIndex(cassette.interactions)
    wanted_request = chat_request("Goodbye")
    assert keyed(wanted_request) not in index
    body = wanted_request.body.to_bytes() if wanted_request.body else b""
    wanted = canonical_request(
        wanted_request.method, wanted_request.url, wanted_request.headers, body, RULES
    )
    (best, *_) = index.nearest(wanted, RULES)
    assert best.index == 0
    assert [(d.field, d.recorded, d.requested) for d in best.differences] == [
        ("body.messages[0].content", "Hello", "Goodbye")
    ]


def test_differences_cover_url_query_headers_and_long_values() -> None:
    recorded = canonical_of(sample_cassette().interactions[0], RULES)
    other = chat_request().model_copy(
        update={
            "url": "https://api.openai.com/v2/chat/completions?x=1",
            "headers": (("openai-beta", "assistants=v1"),),
            "body": Body(text='{"model":"' + "m" * 500 + '"}'),
        }
    )
    wanted = canonical_request(
        other.method, other.url, other.headers, other.body.to_bytes() if other.body else b"", RULES
    )
    fields = {d.field: d for d in differences(recorded, wanted)}
    assert set(fields) == {"path", "query.x", "headers.openai-beta", "body.messages", "body.model"}
    assert str(fields["body.model"].requested).endswith("... (500 chars)")
