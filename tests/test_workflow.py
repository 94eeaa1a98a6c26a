"""The borrowing and lending state machines, alone and applied to a real database."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from itertools import product

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from ill_tui import workflow
from ill_tui.clock import Clock
from ill_tui.db import open_database, session_scope
from ill_tui.models import Direction, Event, Partner, Patron, Request, Status
from ill_tui.services import requests as svc
from ill_tui.workflow import (
    INITIAL,
    REASON_REQUIRED,
    STATUSES,
    TRANSITIONS,
    IllegalTransition,
    ReasonRequired,
    allowed_targets,
    check_transition,
    is_open,
    is_terminal,
)

DIRECTIONS = list(Direction)
ALL_PAIRS = [(d, s, t) for d in DIRECTIONS for s, t in product(Status, Status)]


def _listed(direction: Direction, source: Status, target: Status) -> bool:
    return target in TRANSITIONS[direction].get(source, {})


@pytest.mark.parametrize(("direction", "source", "target"), ALL_PAIRS, ids=str)
def test_every_pair_is_accepted_exactly_when_listed(
    direction: Direction, source: Status, target: Status
) -> None:
    if _listed(direction, source, target):
        transition = check_transition(direction, source, target, reason="the partner said so")
        assert (transition.source, transition.target) == (source, target)
        assert transition.reason_required == (target in REASON_REQUIRED)
        assert transition.label.strip()
        if target not in REASON_REQUIRED:
            assert check_transition(direction, source, target) == transition
    else:
        with pytest.raises(IllegalTransition) as info:
            check_transition(direction, source, target, reason="any reason")
        err = info.value
        allowed = allowed_targets(direction, source)
        assert (err.direction, err.source, err.target) == (direction, source, target)
        assert list(err.allowed) == allowed
        message = str(err)
        assert source.value in message
        assert target.value in message
        for status in allowed:
            assert status.value in message
        if not allowed:
            assert "final status" in message


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("blank", [None, "", "   ", "\t\n"])
def test_reason_required_targets_refuse_a_missing_or_blank_reason(
    direction: Direction, blank: str | None
) -> None:
    checked = 0
    for source, targets in TRANSITIONS[direction].items():
        for target in targets:
            if target in REASON_REQUIRED:
                with pytest.raises(ReasonRequired) as info:
                    check_transition(direction, source, target, blank)
                assert info.value.target is target
                assert target.value in str(info.value)
                check_transition(direction, source, target, "Lender is closed")
                checked += 1
            else:
                check_transition(direction, source, target, blank)
    assert checked > 0


@given(
    direction=st.sampled_from(DIRECTIONS),
    source=st.sampled_from(list(Status)),
    target=st.sampled_from(list(Status)),
    reason=st.one_of(st.none(), st.text(max_size=20)),
)
def test_check_transition_never_lets_an_unlisted_move_through(
    direction: Direction, source: Status, target: Status, reason: str | None
) -> None:
    listed = _listed(direction, source, target)
    needs_reason = target in REASON_REQUIRED and not (reason and reason.strip())
    try:
        check_transition(direction.value, source.value, target.value, reason)
    except IllegalTransition:
        assert not listed
    except ReasonRequired:
        assert listed
        assert needs_reason
    else:
        assert listed
        assert not needs_reason


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_tables_only_use_the_direction_statuses(direction: Direction) -> None:
    statuses = set(STATUSES[direction])
    assert len(statuses) == len(STATUSES[direction]), "STATUSES lists a status twice"
    assert INITIAL[direction] in statuses
    for source, targets in TRANSITIONS[direction].items():
        assert source in statuses
        assert set(targets) <= statuses
        assert source not in targets, f"{source} -> itself"


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_terminal_states_have_no_transitions(direction: Direction) -> None:
    terminals = [s for s in STATUSES[direction] if is_terminal(direction, s)]
    assert terminals, "a workflow without an end"
    for status in terminals:
        assert allowed_targets(direction, status) == []
        assert not is_open(direction, status)
        for target in Status:
            with pytest.raises(IllegalTransition, match="final status"):
                check_transition(direction, status, target, "reason")
    # the final statuses of ILL work are final in both directions
    for status in (Status.CANCELLED, Status.LOAN_COMPLETED, Status.COPY_COMPLETED):
        assert is_terminal(direction, status)


def _reachable(direction: Direction, start: Status) -> set[Status]:
    seen, todo = {start}, deque([start])
    while todo:
        for nxt in allowed_targets(direction, todo.popleft()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_every_status_is_reachable_and_every_open_one_can_finish(direction: Direction) -> None:
    assert _reachable(direction, INITIAL[direction]) == set(STATUSES[direction])
    for status in STATUSES[direction]:
        if not is_terminal(direction, status):
            ends = {s for s in _reachable(direction, status) if is_terminal(direction, s)}
            assert ends, f"{direction} {status} can never reach a final status"


# ---------------------------------------------------------------- applied to a real database


def _seed(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        session.add(Patron(barcode="P1", name="Ada Reader"))
        session.add(
            Partner(
                agency_id_type="ISIL", agency_id_value="DK-820010", name="Royal Library",
                country="DK", currency="DKK",
            )
        )  # fmt: skip


def _new_request(session: Session, direction: Direction, clock: Clock) -> Request:
    form = svc.RequestForm(
        direction=direction.value,
        title="Walks through a state machine",
        patron="P1" if direction is Direction.BORROWING else "",
        partner="ISIL:DK-820010" if direction is Direction.LENDING else "",
    )
    return svc.create_request(session, form=form, actor="creator", clock=clock)


@pytest.fixture
def walk_engine(db_url: str) -> Iterator[sa.Engine]:
    engine = open_database(db_url)
    _seed(engine)
    yield engine
    engine.dispose()


@st.composite
def walks(draw: st.DrawFn) -> tuple[Direction, list[tuple[Status, str | None, str]]]:
    """A direction and a legal path from its initial status, with reasons and actors."""
    direction = draw(st.sampled_from(DIRECTIONS))
    status = INITIAL[direction]
    steps: list[tuple[Status, str | None, str]] = []
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        targets = allowed_targets(direction, status)
        if not targets:
            break
        status = draw(st.sampled_from(targets))
        reason = draw(
            st.sampled_from(["Lender closed", "  patron asked  "])
            if status in REASON_REQUIRED
            else st.sampled_from([None, "", "routine"])
        )
        steps.append((status, reason, draw(st.sampled_from(["ann", "bo", "cy"]))))
    return direction, steps


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(walk=walks(), wrong=st.data())
def test_random_walks_write_one_event_per_transition(
    walk_engine: sa.Engine, walk: tuple[Direction, list[tuple[Status, str | None, str]]],
    wrong: st.DataObject, clock: Clock,
) -> None:  # fmt: skip
    # Each example walks its own new request, so examples share the database harmlessly.
    direction, steps = walk
    with session_scope(walk_engine) as session:
        request_id = _new_request(session, direction, clock).id
    assert request_id is not None
    expected_events: list[tuple[str | None, str, str, str | None]] = [
        (None, INITIAL[direction].value, "creator", "Request created")
    ]
    status, version = INITIAL[direction], 1
    for target, reason, actor in steps:
        # an illegal move in between changes nothing
        illegal = [s for s in Status if s not in allowed_targets(direction, status)]
        bad = wrong.draw(st.sampled_from(illegal))
        with pytest.raises(IllegalTransition), session_scope(walk_engine) as session:
            svc.change_status(
                session, request_id=request_id, to_status=bad, actor=actor, reason="x"
            )
        with session_scope(walk_engine) as session:
            request = svc.change_status(
                session, request_id=request_id, to_status=target, actor=actor, reason=reason,
                expected_version=version,
            )  # fmt: skip
            assert request.status == target.value
        expected_events.append((status.value, target.value, actor, (reason or "").strip() or None))
        status, version = target, version + 1

    with Session(walk_engine) as session:
        stored = session.get(Request, request_id)
        assert stored is not None
        request = stored
        assert request.status == status.value
        assert request.is_open == is_open(direction, status)
        assert request.version == version == len(steps) + 1
        events = session.exec(
            select(Event).where(Event.request_id == request_id).order_by(col(Event.id))
        ).all()
    assert [(e.from_status, e.to_status, e.actor, e.reason) for e in events] == expected_events
    for event in events:
        assert event.at.tzinfo is not None


def test_workflow_module_is_pure() -> None:
    """The state machine knows nothing of the database (DESIGN: workflow.py is pure)."""
    source = workflow.__file__
    with open(source, encoding="utf-8") as fh:
        text = fh.read()
    for forbidden in ("sqlalchemy", "sqlmodel", "ill_tui.db", "ill_tui.services"):
        assert f"import {forbidden}" not in text
        assert f"from {forbidden}" not in text


def test_iso18626_transitions_the_exchange_relies_on() -> None:
    """Moves partners' messages make (services.exchange): a Retry request brings a lending
    request back from RetryPossible; a lender's Overdue reaches a loan already received."""
    check_transition(Direction.LENDING, Status.RETRY_POSSIBLE, Status.REQUEST_RECEIVED)
    check_transition(
        Direction.LENDING, Status.RETRY_POSSIBLE, Status.CANCELLED, reason="no retry came"
    )
    assert is_open(Direction.LENDING, Status.RETRY_POSSIBLE)
    check_transition(Direction.BORROWING, Status.RECEIVED, Status.OVERDUE)
