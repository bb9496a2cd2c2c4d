"""Matching: method, URL and parsed JSON body by default; near-miss report names what differs."""

from __future__ import annotations

import pytest

from streamtape import ConfigError, Request
from streamtape.matching import differences, near_miss, resolve_matchers

URL = "https://api.anthropic.com/v1/messages"
DEFAULT = resolve_matchers(None)


def req(body: bytes = b'{"model":"a","max_tokens":5}', url: str = URL, method: str = "POST", **headers: str) -> Request:
    return Request(method, url, tuple(headers.items()), body)


class TestDefaults:
    def test_key_order_and_whitespace_do_not_matter(self) -> None:
        assert differences(DEFAULT, req(), req(b'{ "max_tokens": 5,\n "model": "a" }')) == []

    def test_volatile_headers_never_matter(self) -> None:
        a = req(**{"User-Agent": "Anthropic/Python 2.13.0", "x-stainless-retry-count": "0"})
        b = req(**{"User-Agent": "Anthropic/Python 0.99.0", "x-stainless-retry-count": "2"})
        assert differences(DEFAULT, a, b) == []

    def test_query_order_does_not_matter(self) -> None:
        assert differences(DEFAULT, req(url=URL + "?a=1&b=2"), req(url=URL + "?b=2&a=1")) == []

    def test_default_port(self) -> None:
        assert differences(DEFAULT, req(url="https://h:443/x"), req(url="https://h/x")) == []

    @pytest.mark.parametrize(
        ("incoming", "expected"),
        [
            (req(b'{"model":"b","max_tokens":5}'), ["body.model: 'a' != 'b'"]),
            (req(b'{"model":"a"}'), ["body.max_tokens: missing (recorded 5)"]),
            (req(b'{"model":"a","max_tokens":5,"x":1}'), ["body.x: not recorded (sent 1)"]),
            (req(method="GET"), ["method: 'POST' != 'GET'"]),
            (req(url="https://api.anthropic.com/v1/complete"), ["path: '/v1/messages' != '/v1/complete'"]),
            (req(b"plain"), ['body: b\'{"model":"a","max_tokens":5}\' != b\'plain\'']),
        ],
        ids=["json-value", "json-missing", "json-extra", "method", "path", "not-json"],
    )
    def test_differences_read_well(self, incoming: Request, expected: list[str]) -> None:
        assert differences(DEFAULT, req(), incoming) == expected

    def test_nested_json_paths(self) -> None:
        a = req(b'{"messages":[{"role":"user","content":"hi"}]}')
        b = req(b'{"messages":[{"role":"user","content":"bye"}]}')
        assert differences(DEFAULT, a, b) == ["body.messages[0].content: 'hi' != 'bye'"]


def test_near_miss_picks_the_closest() -> None:
    recorded = [req(b'{"model":"x","max_tokens":1}'), req(b'{"model":"a","max_tokens":6}')]
    assert near_miss(DEFAULT, recorded, req()) == (1, ["body.max_tokens: 6 != 5"])


def test_configurable_and_custom() -> None:
    matchers = resolve_matchers(["method", "path", lambda r, i: [] if r.header("x-v") == i.header("x-v") else ["x-v"]])
    assert differences(matchers, req(url="https://other/v1/messages", **{"x-v": "1"}), req(**{"x-v": "1"})) == []
    assert differences(matchers, req(**{"x-v": "1"}), req(**{"x-v": "2"})) == ["x-v"]
    assert resolve_matchers("method, path") == resolve_matchers(["method", "path"])


def test_unknown_matcher_lists_the_valid_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown matcher 'bdy'; valid: method, url, scheme, host, port, path, query, body"
    ):
        resolve_matchers(["bdy"])
