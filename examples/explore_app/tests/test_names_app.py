"""The app's tests, as a downstream project writes them: one recorded stream, one rule.

The rule: a complete answer holds every name, and an incomplete one tells the user. Both versions
pass it on the recording. ``pytest --tape-explore`` runs each test under a few hundred fault
schedules more, and finds the ones the first version breaks it under (see ../README.md).
"""

from __future__ import annotations

import pytest
from names_app import suggest_names, suggest_names_checked

import streamtape

#: a real recorded stream: "Suggest names for a pelican", answered "- Captain\n- Scoop" (10 events)
PELICAN = streamtape.starter("text_multi_delta")
ANY_BODY = ["method", "path"]  # the starter was recorded with another model name


def check(result):  # type: ignore[no-untyped-def]
    if result.complete:
        assert result.names == ["Captain", "Scoop"]
    else:
        assert result.note  # the user is told


@pytest.mark.tape(PELICAN, match_on=ANY_BODY)
def test_suggest_names(anthropic_client):  # type: ignore[no-untyped-def]
    check(suggest_names(anthropic_client, "pelican"))


@pytest.mark.tape(PELICAN, match_on=ANY_BODY)
def test_suggest_names_checked(anthropic_client):  # type: ignore[no-untyped-def]
    check(suggest_names_checked(anthropic_client, "pelican"))


# What exploration found, pasted as regression tests: the first version fails them, the fix passes.
FOUND = ("truncate:after=0", "corrupt")


@pytest.mark.tape(PELICAN, match_on=ANY_BODY)
@pytest.mark.tape_faults(*FOUND)
@pytest.mark.xfail(strict=True, reason="the first version passes an early-ended or damaged stream on as complete")
def test_found_breaks_the_first_version(anthropic_client, tape_fault):  # type: ignore[no-untyped-def]
    check(suggest_names(anthropic_client, "pelican"))


@pytest.mark.tape(PELICAN, match_on=ANY_BODY)
@pytest.mark.tape_faults(*FOUND)
def test_found_is_handled_by_the_fix(anthropic_client, tape_fault):  # type: ignore[no-untyped-def]
    check(suggest_names_checked(anthropic_client, "pelican"))
