"""Ports: the small interfaces the core needs from the outside world.

Each is a ``typing.Protocol``; ``adapters/`` implements them, and the composition root
(``app.py`` / ``cli.py``) hands the concrete adapters to the services that need them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from ill_tui.catalog import CatalogError, Clause, SearchResult, Target
from ill_tui.protocol import Message


class CatalogSearch(Protocol):
    """Searches one catalog target for MARC records (adapters.sru.SruClient speaks SRU)."""

    async def search(
        self, target: Target, clauses: Sequence[Clause], *, max_records: int = 10
    ) -> SearchResult:
        """Find the records of ``target`` that match every clause.

        Args:
            target: the catalog to ask.
            clauses: the conditions, all of which must hold.
            max_records: how many records to bring back at most (the total is always given).

        Raises:
            TargetUnreachable: the target did not answer (refused, timed out, HTTP error).
            TargetDiagnostic: the target answered with a diagnostic (``UnsupportedIndex``
                for an index it does not have).
            InvalidResponse: the answer was not a readable SRU response.
            InvalidQuery: nothing searchable was left of the clauses.
        """
        ...

    async def search_many(
        self, targets: Iterable[Target], clauses: Sequence[Clause], *, max_records: int = 10
    ) -> dict[str, SearchResult | CatalogError]:
        """Search ``targets`` concurrently; each target's name maps to its result or its
        error, so a failing target never hides another."""
        ...


class CodecError(ValueError):
    """A ``MessageCodec`` could not build or read a message; the text says why."""


class MessageCodec(Protocol):
    """Turns ISO 18626 messages into bytes and back (``adapters.iso18626.port.Iso18626Codec``).

    The exchange service (``ill_tui.services.exchange``) builds every outbound message with
    ``build`` and stores the bytes in the outbox, so what is sent is exactly what was stored.
    """

    def build(self, message: Message) -> bytes:
        """Serialise ``message`` as an ISO 18626 document that validates against the XSD.

        Raises:
            CodecError: the message cannot be valid ISO 18626 (nothing invalid is returned).
        """
        ...

    def parse(self, data: bytes) -> Message:
        """Read a stored or received ISO 18626 document back into a message.

        Raises:
            CodecError: ``data`` is not an ISO 18626 message that can be read.
        """
        ...
