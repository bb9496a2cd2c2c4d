"""Faults register themselves by name: a user's own fault, as a class or as a plain function over
the plan, works in spec strings, ``faults=[...]`` and chaos pools, through a real replay."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

import streamtape
from streamtape import Cassette, ConfigError, Interaction, Request, Response, faults
from streamtape.faults import CATALOGUE, Context, Plan, apply
from streamtape.faults.catalogue import Disconnect
from streamtape.wire import End, Send
from tests.support import sdk
from tests.support.wire_server import DATA_DIR

BODY = (DATA_DIR / "text_basic.sse").read_bytes()  # 7 events
URL = "https://api.anthropic.com/v1/messages"
BUILT_IN = ["refuse", "reset", "disconnect", "timeout", "http_error", "rate_limit", "overloaded", "server_error",
            "stall", "error_event", "truncate", "delay", "rechunk", "corrupt", "duplicate", "drop", "ping",
            # one provider's streams only (streamtape.faults.bedrock, .gemini, .openai)
            "exception_frame", "bad_crc", "candidate_finish", "prompt_blocked", "done_early", "response_failed",
            # below the stream (streamtape.faults.protocol)
            "connect_timeout", "write_timeout", "pool_timeout", "bad_status", "bad_chunk", "corrupt_gzip", "bom",
            "json_body", "linger",
            # chunk boundaries (streamtape.faults.splits)
            "split", "split_crlf", "split_utf8"]  # fmt: skip


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    """Whatever a test registers is gone afterwards (other tests compare CATALOGUE to the built-ins)."""
    before = dict(CATALOGUE)
    yield
    for name in list(CATALOGUE):
        while name in CATALOGUE and CATALOGUE[name] is not before.get(name):
            faults.unregister(name)  # a new name goes; a replaced built-in comes back
    assert list(before.items()) == list(CATALOGUE.items())  # the same faults, in the same order


def save(path: Path) -> Path:
    response = Response(200, (("content-type", "text/event-stream"),), BODY, ((0.1, len(BODY)),), "OK", 0.05)
    return Cassette([Interaction(Request("POST", URL, body=b'{"a":1}'), response)]).save(path)


def replay(path: Path, spec: object) -> tuple[int, bytes, streamtape.Tape]:
    http = importlib.import_module(sdk.STACK)
    with streamtape.use_cassette(path, faults=spec, match_on=["method", "path"]) as tape, http.Client() as client:
        response = client.post(URL, json={"a": 1})
        return response.status_code, response.content, tape


def test_the_built_ins_registered_themselves_in_their_order() -> None:
    assert list(CATALOGUE) == BUILT_IN and CATALOGUE["disconnect"] is Disconnect


class TestAFunction:
    def test_in_a_spec_string_through_a_replay(self, tmp_path: Path) -> None:
        seen: list[tuple[int, float]] = []

        @faults.register("slow_start")
        def slow_start(plan: Plan, context: Context, *, seconds: float = 1.0) -> Plan:
            seen.append((context.number, seconds))
            plan.shift(0, seconds)
            return plan

        path = save(tmp_path / "c.yaml")
        status, body, tape = replay(path, "slow_start:seconds=2 -> ok")
        assert (status, body) == (200, BODY) and seen == [(1, 2)]
        assert tape.calls[0].faults == ("slow_start:seconds=2",)
        assert slow_start(seconds=2).spec() == "slow_start:seconds=2" and slow_start().seconds == 1.0

    def test_in_a_list_and_composed_with_built_ins(self, tmp_path: Path) -> None:
        def shout(plan: Plan, context: Context, *, word: str = "HEY") -> Plan:
            plan.pieces = [
                type(p)(p.data.replace(b"Hello", word.encode()), p.at, p.event, p.offset) for p in plan.pieces
            ]
            return plan

        fault = faults.register(shout, name="shout")
        status, body, _ = replay(save(tmp_path / "c.yaml"), [fault(word="HOWDY"), faults.truncate()])
        assert status == 200 and b"HOWDY" in body and b"message_stop" not in body

    def test_its_phase_decides_when_it_runs(self) -> None:
        order: list[str] = []

        @faults.register("early", phase="replace")
        def early(plan: Plan, context: Context) -> None:
            order.append("early")  # returns nothing: edited in place

        @faults.register("late", phase=faults.RECHUNK)
        def late(plan: Plan, context: Context) -> Plan:
            order.append("late")
            return plan

        actions = Interaction(Request("POST", URL), Response(200, (), BODY, ((0.1, len(BODY)),))).actions()
        apply([late(), faults.disconnect(after=1), early()], actions, Context())
        assert order == ["early", "late"]

    def test_in_a_chaos_pool(self, tmp_path: Path) -> None:
        calls: list[int] = []

        @faults.register("count_me")
        def count_me(plan: Plan, context: Context) -> Plan:
            calls.append(context.number)
            return plan

        path = save(tmp_path / "c.yaml")
        assert replay(path, faults.chaos(p=1.0, pool=["count_me"]))[:2] == (200, BODY) and calls == [1]

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ("slow_start:secs=2", "fault spec 'slow_start:secs=2': slow_start has no parameter 'secs'; valid: seconds"),
            ("slow_start:seconds=soon", "slow_start: seconds='soon' is not valid; expected float"),
            ("slow_strat", "unknown fault 'slow_strat'; valid: refuse, reset,"),
        ],
    )
    def test_bad_parameters_in_one_sentence(self, spec: str, message: str) -> None:
        @faults.register("slow_start")
        def slow_start(plan: Plan, context: Context, *, seconds: float = 1.0) -> Plan:
            return plan

        with pytest.raises(ConfigError) as info:
            faults.parse(spec)
        assert message in str(info.value)
        with pytest.raises(ConfigError, match="slow_start has no parameter 'secs'; valid: seconds"):
            slow_start(secs=1)

    def test_a_required_parameter_must_be_given(self) -> None:
        @faults.register("needs")
        def needs(plan: Plan, context: Context, *, amount: int) -> Plan:
            return plan

        with pytest.raises(ConfigError, match="needs needs amount=; valid: amount"):
            faults.parse("needs")
        assert faults.parse("needs:amount=3").spec() == "needs:amount=3"
        with pytest.raises(ConfigError, match="chaos: needs in pool cannot be drawn with its defaults"):
            faults.chaos(pool=["needs"])

    @pytest.mark.parametrize(
        ("function", "message"),
        [
            (lambda plan: plan, "it must take (plan, context, *, your_parameter=default, ...)"),
            (lambda plan, context, *rest: plan, "*rest cannot be a spec parameter"),
            (lambda plan, context, *, name="x": plan, "a parameter cannot be called 'name'"),
            (lambda plan, context, *, items=[]: plan, "mutable default"),  # noqa: B006 - the point of the case
        ],
    )
    def test_a_function_that_cannot_be_a_fault(self, function: object, message: str) -> None:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
            faults.register(function, name="broken")
        assert "broken" not in CATALOGUE

    def test_a_function_must_return_the_plan(self) -> None:
        @faults.register("wrong")
        def wrong(plan: Plan, context: Context) -> str:
            return "nope"

        with pytest.raises(ConfigError, match="fault 'wrong' returned str, not the Plan it was given"):
            apply([wrong()], Interaction(Request("POST", URL), Response(200, (), BODY)).actions(), Context())

    @pytest.mark.parametrize("name", ["ok", "chaos_monkey", "scenario", "two words", "a:b", ""])
    def test_names_the_spec_grammar_owns_are_refused(self, name: str) -> None:
        with pytest.raises(ConfigError):
            faults.register(lambda plan, context: plan, name=name or None)  # "" -> the lambda's own name
        assert name not in CATALOGUE or name == ""


class TestAClass:
    def test_defining_it_registers_it_for_specs_and_lists(self, tmp_path: Path) -> None:
        @dataclass(frozen=True, kw_only=True)
        class Teapot(faults.Fault):
            """418 with a body of our own, before any stream."""

            name: ClassVar[str] = "teapot"
            body: str = "short and stout"

            @property
            def phase(self) -> int:
                return faults.REPLACE

            def __call__(self, plan: Plan, context: Context) -> Plan:
                from streamtape.faults import Piece
                from streamtape.wire import Respond

                data = self.body.encode()
                return Plan([Respond(418, (("content-length", str(len(data))),), "I'm a teapot", 0.0)],
                            [Piece(data, 0.0)], [End(0.0)])  # fmt: skip

        assert CATALOGUE["teapot"] is Teapot
        path = save(tmp_path / "c.yaml")
        assert replay(path, "teapot:body=tall -> ok")[:2] == (418, b"tall")
        assert replay(path, [Teapot()])[:2] == (418, b"short and stout")
        with pytest.raises(ConfigError, match="teapot has no parameter 'colour'; valid: body"):
            faults.parse("teapot:colour=blue")

    def test_a_duplicate_name_is_refused_unless_replaced_on_purpose(self) -> None:
        with pytest.raises(ConfigError, match="fault 'disconnect' is already registered .*catalogue.Disconnect"):

            @dataclass(frozen=True, kw_only=True)
            class MyDisconnect(faults.Fault):
                name: ClassVar[str] = "disconnect"

        assert CATALOGUE["disconnect"] is Disconnect

        @dataclass(frozen=True, kw_only=True)
        class Gentle(faults.Fault, replace=True):
            name: ClassVar[str] = "disconnect"

            def __call__(self, plan: Plan, context: Context) -> Plan:
                return plan

        assert type(faults.parse_fault("disconnect")) is Gentle
        faults.unregister("disconnect")  # the built-in comes back, in its place
        assert CATALOGUE["disconnect"] is Disconnect and type(faults.parse_fault("disconnect")) is Disconnect
        assert list(CATALOGUE) == BUILT_IN

    def test_a_function_name_clash_is_refused_too(self) -> None:
        with pytest.raises(ConfigError, match="fault 'ping' is already registered"):
            faults.register(lambda plan, context: plan, name="ping")
        replaced = faults.register(lambda plan, context: plan, name="ping", replace=True)
        assert CATALOGUE["ping"] is replaced
        faults.unregister("ping")
        assert CATALOGUE["ping"] is faults.ping

    def test_a_subclass_without_its_own_name_registers_nothing(self) -> None:
        @dataclass(frozen=True, kw_only=True)
        class Louder(Disconnect):
            pass

        assert CATALOGUE["disconnect"] is Disconnect and Louder not in CATALOGUE.values()
        assert Louder(after=2).spec() == "disconnect:after=2"

    def test_unregister_an_unknown_name(self) -> None:
        with pytest.raises(ConfigError, match="no fault 'nope' is registered"):
            faults.unregister("nope")


def test_the_public_names_a_fault_needs() -> None:
    from streamtape.faults import Piece

    assert {faults.Plan, faults.Piece, faults.Context} == {Plan, Piece, Context}
    plan = Plan.from_actions(Interaction(Request("POST", URL), Response(200, (), BODY, ((0.1, len(BODY)),))).actions())
    assert plan.events == 7 and plan.unit == "SSE event"
    assert b"".join(a.data for a in plan.actions() if isinstance(a, Send)) == BODY


def test_scenarios_do_not_import_the_faults() -> None:
    """``streamtape.faults.spec`` reads scenario files; the file reader needs nothing from faults back."""
    import ast

    source = Path(importlib.import_module("streamtape.faults.scenarios").__file__ or "").read_text()
    nodes = [node for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.Import, ast.ImportFrom))]
    siblings = [node for node in nodes if isinstance(node, ast.ImportFrom) and node.level == 1]
    absolute = [alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names]
    assert siblings == [] and not [name for name in absolute if name.startswith("streamtape")]
    assert faults.load_scenario("flaky-network") == faults.parse("scenario:flaky-network")
    from streamtape.scenarios import load_scenario, scenario_names

    assert load_scenario is faults.load_scenario and "flaky-network" in scenario_names()
