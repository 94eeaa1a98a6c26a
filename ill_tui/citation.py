"""The citation: what a request asks for, as text, wherever it came from.

A ``Citation`` is what an intake source (an OpenURL link, a row of a batch file, a catalog
record) yields before any checking: the citation fields of the new-request form, as text.
``ill_tui.services.intake`` turns it into a ``RequestForm`` and the usual checks run on it.

Readers of citation links (``adapters.openurl`` is one) implement ``CitationLinkReader`` and
raise a ``CitationLinkError`` subclass, so the core can call them without importing adapters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Protocol

LOAN = "Loan"
COPY = "Copy"


@dataclass(frozen=True, slots=True, kw_only=True)
class Citation:
    """The citation fields of a request, as text ("" when unknown).

    For a copy (an article or a chapter) ``title`` is the journal or book, ``article_title``
    and ``article_author`` the part wanted; ``service_type`` is then ``"Copy"``.
    ``source`` says where the citation came from (an OpenURL ``sid``/``rfr_id``), for the note.
    """

    title: str = ""
    author: str = ""
    edition: str = ""
    publisher: str = ""
    place_of_publication: str = ""
    year: str = ""
    isbn: str = ""
    issn: str = ""
    oclc_number: str = ""
    lccn: str = ""
    doi: str = ""
    pmid: str = ""
    article_title: str = ""
    article_author: str = ""
    volume: str = ""
    issue: str = ""
    pages: str = ""
    service_type: str = LOAN
    source: str = ""

    def values(self) -> dict[str, str]:
        """The citation fields that are filled (not ``service_type`` or ``source``)."""
        return {
            name: value
            for name, value in asdict(self).items()
            if name in CITATION_FIELDS and value.strip()
        }


CITATION_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(Citation) if f.name not in ("service_type", "source")
)


class CitationLinkError(ValueError):
    """A citation link (e.g. an OpenURL) that cannot be read; the message says why."""


class CitationLinkReader(Protocol):
    """Turns a pasted citation link into a ``Citation``.

    Implementations raise ``CitationLinkError`` (or a subclass) with a message staff can act on
    when the link is malformed or carries no usable citation; they never do network I/O.
    """

    def __call__(self, link: str) -> Citation:
        """Read ``link`` (a full URL or only its query string)."""
        ...
