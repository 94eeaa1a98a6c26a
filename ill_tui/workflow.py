"""The borrowing and lending state machines.

Every legal change of a request's status is listed here, once. ISO 18626 statuses describe the
request at the current partner; the local stages cover what the protocol does not (verifying a
citation, pulling an item from the shelf, lending it on to our patron).

Borrowing, in the usual order::

    New -> Verifying -> Sourcing -> RequestReceived -> ExpectToSupply -> WillSupply
        -> Loaned -> Received -> CheckedOut -> Returned -> LoanCompleted
    (copies end at CopyCompleted; Unfilled and RetryPossible go back to Sourcing)

The ISO 18626 exchange (``services.exchange``) moves the ISO statuses as partners' messages
arrive; staff move the local stages.

Lending::

    RequestReceived -> ExpectToSupply -> Pulling -> WillSupply -> Shipped -> Loaned
        -> LoanCompleted  (copies: WillSupply -> CopyCompleted)
    (RetryPossible -> RequestReceived when the borrower sends a Retry request)

This module is pure: it knows nothing of the database. ``services.requests`` applies a
transition and writes its Event in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ill_tui.models import Direction, Status

S = Status


@dataclass(frozen=True)
class Transition:
    """A legal move from one status to another."""

    source: Status
    target: Status
    label: str
    reason_required: bool = False


def _t(source: Status, target: Status, label: str, *, reason: bool = False) -> Transition:
    return Transition(source, target, label, reason)


# Statuses that need a reason whenever a request enters them: staff, the partner and the
# statistics all want to know why.
REASON_REQUIRED: frozenset[Status] = frozenset(
    {S.CANCELLED, S.UNFILLED, S.RETRY_POSSIBLE, S.RECALLED, S.COMPLETED_WITHOUT_RETURN}
)

_BORROWING: tuple[tuple[Status, Status, str], ...] = (
    (S.NEW, S.VERIFYING, "Start verifying the citation"),
    (S.NEW, S.SOURCING, "Skip verification, choose lenders"),
    (S.NEW, S.CANCELLED, "Cancel the request"),
    (S.VERIFYING, S.SOURCING, "Citation verified, choose lenders"),
    (S.VERIFYING, S.NEW, "Back to New"),
    (S.VERIFYING, S.CANCELLED, "Cancel the request"),
    (S.SOURCING, S.REQUEST_RECEIVED, "Lender received the request"),
    (S.SOURCING, S.CANCELLED, "Cancel the request"),
    (S.REQUEST_RECEIVED, S.EXPECT_TO_SUPPLY, "Lender expects to supply"),
    (S.REQUEST_RECEIVED, S.WILL_SUPPLY, "Lender will supply"),
    (S.REQUEST_RECEIVED, S.LOANED, "Lender shipped the loan"),
    (S.REQUEST_RECEIVED, S.COPY_COMPLETED, "Lender delivered the copy"),
    (S.REQUEST_RECEIVED, S.RETRY_POSSIBLE, "Lender offers a retry"),
    (S.REQUEST_RECEIVED, S.UNFILLED, "Lender cannot supply"),
    (S.REQUEST_RECEIVED, S.CANCELLED, "Cancel the request"),
    (S.EXPECT_TO_SUPPLY, S.WILL_SUPPLY, "Lender will supply"),
    (S.EXPECT_TO_SUPPLY, S.LOANED, "Lender shipped the loan"),
    (S.EXPECT_TO_SUPPLY, S.COPY_COMPLETED, "Lender delivered the copy"),
    (S.EXPECT_TO_SUPPLY, S.RETRY_POSSIBLE, "Lender offers a retry"),
    (S.EXPECT_TO_SUPPLY, S.UNFILLED, "Lender cannot supply"),
    (S.EXPECT_TO_SUPPLY, S.CANCELLED, "Cancel the request"),
    (S.WILL_SUPPLY, S.LOANED, "Lender shipped the loan"),
    (S.WILL_SUPPLY, S.COPY_COMPLETED, "Lender delivered the copy"),
    (S.WILL_SUPPLY, S.UNFILLED, "Lender cannot supply after all"),
    (S.WILL_SUPPLY, S.CANCELLED, "Cancel the request"),
    (S.RETRY_POSSIBLE, S.SOURCING, "Accept the conditions or move to the next lender"),
    (S.RETRY_POSSIBLE, S.CANCELLED, "Cancel the request"),
    (S.UNFILLED, S.SOURCING, "Try the next lender"),
    (S.UNFILLED, S.CANCELLED, "Cancel: no lender can supply"),
    (S.LOANED, S.RECEIVED, "Item received from the lender"),
    (S.LOANED, S.OVERDUE, "Lender reports the loan overdue"),
    (S.LOANED, S.RECALLED, "Lender recalls the item"),
    (S.LOANED, S.COMPLETED_WITHOUT_RETURN, "Lost in transit, settled"),
    (S.RECEIVED, S.CHECKED_OUT, "Lend the item to the patron"),
    (S.RECEIVED, S.RETURNED, "Return to lender without checkout"),
    (S.RECEIVED, S.RECALLED, "Lender recalls the item"),
    (S.RECEIVED, S.OVERDUE, "Lender reports the loan overdue"),
    (S.CHECKED_OUT, S.RETURNED, "Patron returned the item"),
    (S.CHECKED_OUT, S.OVERDUE, "Loan is overdue"),
    (S.CHECKED_OUT, S.RECALLED, "Lender recalls the item"),
    (S.CHECKED_OUT, S.COMPLETED_WITHOUT_RETURN, "Patron lost the item, settled"),
    (S.OVERDUE, S.RETURNED, "Patron returned the item"),
    (S.OVERDUE, S.RECALLED, "Lender recalls the item"),
    (S.OVERDUE, S.COMPLETED_WITHOUT_RETURN, "Item lost, settled"),
    (S.RECALLED, S.RETURNED, "Patron returned the item"),
    (S.RECALLED, S.OVERDUE, "Recall not answered in time"),
    (S.RECALLED, S.COMPLETED_WITHOUT_RETURN, "Item lost, settled"),
    (S.RETURNED, S.LOAN_COMPLETED, "Lender confirmed the return"),
)

_LENDING: tuple[tuple[Status, Status, str], ...] = (
    (S.REQUEST_RECEIVED, S.EXPECT_TO_SUPPLY, "We expect to supply"),
    (S.REQUEST_RECEIVED, S.PULLING, "Pull the item from the shelf"),
    (S.REQUEST_RECEIVED, S.WILL_SUPPLY, "We will supply"),
    (S.REQUEST_RECEIVED, S.RETRY_POSSIBLE, "Offer a retry with conditions"),
    (S.REQUEST_RECEIVED, S.UNFILLED, "We cannot supply"),
    (S.REQUEST_RECEIVED, S.CANCELLED, "Cancelled by the borrower"),
    (S.EXPECT_TO_SUPPLY, S.PULLING, "Pull the item from the shelf"),
    (S.EXPECT_TO_SUPPLY, S.WILL_SUPPLY, "We will supply"),
    (S.EXPECT_TO_SUPPLY, S.RETRY_POSSIBLE, "Offer a retry with conditions"),
    (S.EXPECT_TO_SUPPLY, S.UNFILLED, "We cannot supply"),
    (S.EXPECT_TO_SUPPLY, S.CANCELLED, "Cancelled by the borrower"),
    (S.PULLING, S.WILL_SUPPLY, "Item found, we will supply"),
    (S.PULLING, S.RETRY_POSSIBLE, "Offer a retry with conditions"),
    (S.PULLING, S.UNFILLED, "Item not on shelf, cannot supply"),
    (S.PULLING, S.CANCELLED, "Cancelled by the borrower"),
    # ISO 18626: after RetryPossible the borrower may send a Retry request on our conditions
    (S.RETRY_POSSIBLE, S.REQUEST_RECEIVED, "Borrower retries on our conditions"),
    (S.RETRY_POSSIBLE, S.CANCELLED, "Borrower did not retry"),
    (S.WILL_SUPPLY, S.SHIPPED, "Ship the loan"),
    (S.WILL_SUPPLY, S.COPY_COMPLETED, "Copy delivered"),
    (S.WILL_SUPPLY, S.UNFILLED, "Cannot supply after all"),
    (S.WILL_SUPPLY, S.CANCELLED, "Cancelled by the borrower"),
    (S.SHIPPED, S.LOANED, "Borrower received the item"),
    (S.SHIPPED, S.LOAN_COMPLETED, "Item back on our shelf"),
    (S.SHIPPED, S.COMPLETED_WITHOUT_RETURN, "Lost in transit, settled"),
    (S.LOANED, S.OVERDUE, "Loan is overdue"),
    (S.LOANED, S.RECALLED, "Recall the item"),
    (S.LOANED, S.LOAN_COMPLETED, "Item back on our shelf"),
    (S.LOANED, S.COMPLETED_WITHOUT_RETURN, "Item lost, settled"),
    (S.OVERDUE, S.RECALLED, "Recall the item"),
    (S.OVERDUE, S.LOAN_COMPLETED, "Item back on our shelf"),
    (S.OVERDUE, S.COMPLETED_WITHOUT_RETURN, "Item lost, settled"),
    (S.RECALLED, S.OVERDUE, "Recall not answered in time"),
    (S.RECALLED, S.LOAN_COMPLETED, "Item back on our shelf"),
    (S.RECALLED, S.COMPLETED_WITHOUT_RETURN, "Item lost, settled"),
)


def _table(rows: tuple[tuple[Status, Status, str], ...]) -> dict[Status, dict[Status, Transition]]:
    table: dict[Status, dict[Status, Transition]] = {}
    for source, target, label in rows:
        table.setdefault(source, {})[target] = _t(
            source, target, label, reason=target in REASON_REQUIRED
        )
    return table


TRANSITIONS: Mapping[Direction, Mapping[Status, Mapping[Status, Transition]]] = {
    Direction.BORROWING: _table(_BORROWING),
    Direction.LENDING: _table(_LENDING),
}

INITIAL: Mapping[Direction, Status] = {
    Direction.BORROWING: S.NEW,
    Direction.LENDING: S.REQUEST_RECEIVED,
}

STATUSES: Mapping[Direction, tuple[Status, ...]] = {
    Direction.BORROWING: (
        S.NEW, S.VERIFYING, S.SOURCING, S.REQUEST_RECEIVED, S.EXPECT_TO_SUPPLY, S.WILL_SUPPLY,
        S.RETRY_POSSIBLE, S.UNFILLED, S.LOANED, S.RECEIVED, S.CHECKED_OUT, S.OVERDUE,
        S.RECALLED, S.RETURNED, S.COPY_COMPLETED, S.LOAN_COMPLETED,
        S.COMPLETED_WITHOUT_RETURN, S.CANCELLED,
    ),
    Direction.LENDING: (
        S.REQUEST_RECEIVED, S.EXPECT_TO_SUPPLY, S.PULLING, S.WILL_SUPPLY, S.RETRY_POSSIBLE,
        S.UNFILLED, S.SHIPPED, S.LOANED, S.OVERDUE, S.RECALLED, S.COPY_COMPLETED,
        S.LOAN_COMPLETED, S.COMPLETED_WITHOUT_RETURN, S.CANCELLED,
    ),
}  # fmt: skip


class IllegalTransition(ValueError):
    """A status change the workflow does not allow; the message names the allowed ones."""

    def __init__(self, direction: Direction, source: Status, target: Status) -> None:
        self.direction = direction
        self.source = source
        self.target = target
        self.allowed = tuple(allowed_targets(direction, source))
        allowed = ", ".join(self.allowed) if self.allowed else "none: it is a final status"
        super().__init__(
            f"A {direction.value} request cannot go from {source.value} to {target.value}. "
            f"Allowed from {source.value}: {allowed}."
        )


class ReasonRequired(ValueError):
    """The transition needs a reason and none was given."""

    def __init__(self, target: Status) -> None:
        self.target = target
        super().__init__(f"A reason is required to change the status to {target.value}.")


def transitions_from(direction: Direction | str, source: Status | str) -> list[Transition]:
    """All transitions allowed from ``source``, in the order the table lists them."""
    return list(TRANSITIONS[Direction(direction)].get(Status(source), {}).values())


def allowed_targets(direction: Direction | str, source: Status | str) -> list[Status]:
    """The statuses a request can move to from ``source``."""
    return [t.target for t in transitions_from(direction, source)]


def is_terminal(direction: Direction | str, status: Status | str) -> bool:
    """True when no transition leaves ``status``."""
    return not transitions_from(direction, status)


def check_transition(
    direction: Direction | str,
    source: Status | str,
    target: Status | str,
    reason: str | None = None,
) -> Transition:
    """Return the transition from ``source`` to ``target`` or raise why it is not allowed.

    Raises:
        IllegalTransition: the workflow has no such transition (the error lists the allowed).
        ReasonRequired: the transition needs a non-blank reason.
    """
    d, s, t = Direction(direction), Status(source), Status(target)
    transition = TRANSITIONS[d].get(s, {}).get(t)
    if transition is None:
        raise IllegalTransition(d, s, t)
    if transition.reason_required and not (reason and reason.strip()):
        raise ReasonRequired(t)
    return transition


def is_open(direction: Direction | str, status: Status | str) -> bool:
    """True while the request still needs work (not in a final status)."""
    return not is_terminal(direction, status)
