"""OpenURL 1.0 (KEV) and 0.1 links -> citations, and ``ill-tui import-openurl`` end to end.

The links below are shaped like the ones real sources send: PubMed's and EBSCO's OpenURL 1.0
KEV (``rft_val_fmt`` + ``rft.*``), Google Scholar's 0.1 (``sid=google&...&id=doi:...``),
WorldCat's book links with ``rft_id=urn:ISBN:`` and ``info:oclcnum/``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import select

from adapters.openurl import OpenURLError, parse_openurl
from ill_tui.citation import COPY, LOAN, CitationLinkError
from ill_tui.cli import cli
from ill_tui.config import sqlite_url
from ill_tui.db import open_database, session_scope
from ill_tui.models import Event, Note, Patron, Request

PUBMED_ARTICLE = (
    "https://resolver.example.edu/ill?url_ver=Z39.88-2004&ctx_ver=Z39.88-2004"
    "&rft_val_fmt=info%3Aofi%2Ffmt%3Akev%3Amtx%3Ajournal&rfr_id=info%3Asid%2Fncbi.nlm.nih.gov"
    "%3Apubmed&rft.genre=article&rft.atitle=Molecular+structure+of+nucleic+acids%3B+a+structure"
    "+for+deoxyribose+nucleic+acid&rft.jtitle=Nature&rft.aulast=Watson&rft.aufirst=J+D"
    "&rft.au=Crick%2C+F+H&rft.date=1953-04-25&rft.volume=171&rft.issue=4356&rft.spage=737"
    "&rft.epage=738&rft.issn=0028-0836&rft_id=info%3Adoi%2F10.1038%2F171737a0"
    "&rft_id=info%3Apmid%2F13054692"
)
WORLDCAT_BOOK = (
    "url_ver=Z39.88-2004&rft_val_fmt=info:ofi/fmt:kev:mtx:book&rft.genre=book"
    "&rft.btitle=Cybernetics%3A+or+control+and+communication+in+the+animal+and+the+machine"
    "&rft.aulast=Wiener&rft.aufirst=Norbert&rft.pub=MIT+Press&rft.place=Cambridge%2C+Mass."
    "&rft.edition=2nd+ed.&rft.date=1961&rft_id=urn:ISBN:0-262-73009-X"
    "&rft_id=info:oclcnum/ocm00000123"
)
SCHOLAR_ARTICLE = (
    "http://ill.example.edu/openurl?sid=google&auinit=T&aulast=Berners-Lee"
    "&atitle=The+semantic+web&title=Scientific+american&volume=284&issue=5&date=2001&spage=34"
    "&issn=0036-8733&id=doi:10.1038/scientificamerican0501-34"
)


# -------------------------------------------------------------------------------- OpenURL 1.0


def test_article_1_0_with_doi_and_pmid() -> None:
    c = parse_openurl(PUBMED_ARTICLE)
    assert c.service_type == COPY
    assert c.title == "Nature"
    assert c.article_title == (
        "Molecular structure of nucleic acids; a structure for deoxyribose nucleic acid"
    )
    assert c.article_author == "Watson, J D; Crick, F H"
    assert c.author == ""
    assert (c.year, c.volume, c.issue, c.pages) == ("1953", "171", "4356", "737-738")
    assert c.issn == "00280836"
    assert c.doi == "10.1038/171737a0"
    assert c.pmid == "13054692"
    assert c.source == "ncbi.nlm.nih.gov:pubmed"


def test_book_1_0_with_urn_isbn_and_oclc() -> None:
    c = parse_openurl(WORLDCAT_BOOK)
    assert c.service_type == LOAN
    assert c.title == "Cybernetics: or control and communication in the animal and the machine"
    assert c.author == "Wiener, Norbert"
    assert (c.publisher, c.place_of_publication, c.edition, c.year) == (
        "MIT Press",
        "Cambridge, Mass.",
        "2nd ed.",
        "1961",
    )
    assert c.isbn == "9780262730099"  # urn:ISBN: ISBN-10, stored as ISBN-13
    assert c.oclc_number == "123"
    assert c.article_title == ""


def test_book_chapter_is_a_copy_of_part_of_the_book() -> None:
    c = parse_openurl(
        "url_ver=Z39.88-2004&rft_val_fmt=info:ofi/fmt:kev:mtx:book&rft.genre=bookitem"
        "&rft.btitle=Handbook+of+Middle+English&rft.atitle=The+Pearl+poet&rft.au=Jane+Doe"
        "&rft.isbn=9780306406157&rft.spage=101&rft.epage=130"
    )
    assert c.service_type == COPY
    assert (c.title, c.article_title, c.article_author) == (
        "Handbook of Middle English",
        "The Pearl poet",
        "Jane Doe",
    )
    assert c.pages == "101-130"
    assert c.isbn == "9780306406157"


def test_rft_title_eissn_and_pages_and_plain_au() -> None:
    c = parse_openurl(
        "url_ver=Z39.88-2004&rft.genre=article&rft.title=Journal+of+Things"
        "&rft.atitle=On+things&rft.au=Kim%2C+Lee&rft.au=Park%2C+Soo&rft.eissn=2434-561x"
        "&rft.pages=e1001&rft.date=2019"
    )
    assert (c.title, c.article_author, c.issn, c.pages) == (
        "Journal of Things",
        "Kim, Lee; Park, Soo",
        "2434561X",
        "e1001",
    )


def test_only_a_query_string_percent_encoding_and_plus() -> None:
    # UTF-8 percent-encoding, '+' for blanks, '&amp;' from an HTML page, a leading '?'
    c = parse_openurl(
        "?url_ver=Z39.88-2004&amp;rft.genre=book&amp;rft.btitle=Gr%C3%BCnde+der+"
        "%C3%84sthetik&amp;rft.au=M%C3%BCller%2C+J%C3%B6rg&amp;rft.isbn=0-306-40615-2"
    )
    assert c.title == "Gründe der Ästhetik"
    assert c.author == "Müller, Jörg"
    assert c.isbn == "9780306406157"


def test_link_without_scheme_and_with_fragment() -> None:
    c = parse_openurl("www.example.edu/ill?genre=book&title=Cybernetics&isbn=026273009X#top")
    assert (c.title, c.isbn) == ("Cybernetics", "9780262730099")


def test_latin1_from_an_old_source() -> None:
    c = parse_openurl("genre=book&title=Les+Mis%E9rables&aulast=Hugo&aufirst=Victor")
    assert c.title == "Les Misérables"
    assert c.author == "Hugo, Victor"


def test_made_with_urlencode_round_trips_every_field() -> None:
    fields = {
        "url_ver": "Z39.88-2004",
        "rft_val_fmt": "info:ofi/fmt:kev:mtx:journal",
        "rft.genre": "article",
        "rft.jtitle": "Q & A: a journal; of things?",
        "rft.atitle": "100% sure = 50/50",
        "rft.aulast": "O'Brien",
        "rft.aufirst": "Máire",
        "rft.volume": "12",
        "rft.issue": "3",
        "rft.spage": "5",
        "rft_id": "info:doi/10.1002/(SICI)1097-4571(199806)49:8<693::AID-ASI4>3.0.CO;2-0",
    }
    c = parse_openurl("https://x.example/ill?" + urlencode(fields))
    assert c.title == "Q & A: a journal; of things?"
    assert c.article_title == "100% sure = 50/50"
    assert c.article_author == "O'Brien, Máire"
    assert c.doi == "10.1002/(SICI)1097-4571(199806)49:8<693::AID-ASI4>3.0.CO;2-0"


def test_invalid_identifier_is_passed_on_as_written() -> None:
    # The form says what is wrong with it; the parser does not silently drop it.
    c = parse_openurl("url_ver=Z39.88-2004&rft.btitle=X&rft.isbn=0-306-40615-3")
    assert c.isbn == "0-306-40615-3"


# -------------------------------------------------------------------------------- OpenURL 0.1


def test_article_0_1_google_scholar_with_doi() -> None:
    c = parse_openurl(SCHOLAR_ARTICLE)
    assert c.service_type == COPY
    assert (c.title, c.article_title, c.article_author) == (
        "Scientific american",
        "The semantic web",
        "Berners-Lee, T",
    )
    assert (c.year, c.volume, c.issue, c.pages, c.issn) == ("2001", "284", "5", "34", "00368733")
    assert c.doi == "10.1038/scientificamerican0501-34"
    assert c.source == "google"


def test_0_1_pmid_and_book() -> None:
    c = parse_openurl("genre=article&title=Lancet&atitle=A+trial&id=pmid:12345678&date=2003")
    assert c.pmid == "12345678"
    assert c.service_type == COPY
    book = parse_openurl("genre=book&title=Being+and+Time&aulast=Heidegger&isbn=0060638508")
    assert book.service_type == LOAN
    assert (book.title, book.author, book.isbn) == (
        "Being and Time",
        "Heidegger",
        "9780060638504",
    )


# ---------------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    ("link", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("just some words", "no key=value"),
        ("https://resolver.example.edu/ill", "no query"),
        ("https://resolver.example.edu/ill?", "no query"),
        ("www.example.edu/ill", "no query"),
        ("url_ver=Z39.88-2004&rft.genre=book", "no title, ISBN, ISSN or DOI"),
        ("sid=google&genre=article&volume=3", "no title, ISBN, ISSN or DOI"),
        ("https://x.example/?url_ver=Z39.88-2004&rft.btitle=", "no title, ISBN, ISSN or DOI"),
        ("url_ver=Z39.99&rft.btitle=Cybernetics", "version 'Z39.99' is not supported"),
        (
            "url_ver=Z39.88-2004&rft_val_fmt=info:ofi/fmt:kev:mtx:patent&rft.title=Widget",
            "describes a 'patent'",
        ),
    ],
)
def test_malformed_links_give_a_clear_error(link: str, words: str) -> None:
    with pytest.raises(OpenURLError, match=words) as caught:
        parse_openurl(link)
    assert isinstance(caught.value, CitationLinkError)  # the core's error type


# ------------------------------------------------------------------- ill-tui import-openurl


@pytest.fixture
def db_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated SQLite file with one active and one inactive patron."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("ILL_TUI_DATABASE_URL", raising=False)
    path = tmp_path / "ill.db"
    engine = open_database(sqlite_url(path))
    with session_scope(engine) as session:
        session.add(Patron(barcode="P001", name="Ada Lovelace"))
        session.add(Patron(barcode="P009", name="Gone Away", active=False))
    engine.dispose()
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="ill-tui", catch_exceptions=False)


def stored(path: Path) -> tuple[list[Request], list[Event], list[Note]]:
    engine = sa.create_engine(sqlite_url(path))
    try:
        with session_scope(engine) as session:
            return (
                list(session.exec(select(Request).order_by(Request.id))),  # type: ignore[arg-type]
                list(session.exec(select(Event))),
                list(session.exec(select(Note))),
            )
    finally:
        engine.dispose()


def test_cli_imports_an_article_link(db_file: Path) -> None:
    result = run("import-openurl", PUBMED_ARTICLE, "--patron", "P001", "--db", str(db_file))
    assert result.exit_code == 0, result.output
    requests, events, notes = stored(db_file)
    assert len(requests) == 1
    r = requests[0]
    assert result.output.startswith(f"Created borrowing request {r.id} (New, Copy) for Ada")
    assert "doi: 10.1038/171737a0" in result.output
    assert (r.direction, r.status, r.service_type, r.party_name) == (
        "borrowing",
        "New",
        "Copy",
        "Ada Lovelace",
    )
    assert (r.title, r.issn, r.doi, r.pmid, r.volume, r.pages) == (
        "Nature",
        "00280836",
        "10.1038/171737a0",
        "13054692",
        "171",
        "737-738",
    )
    assert r.duplicate_of_id is None
    assert [e.to_status for e in events] == ["New"]
    assert [n.text for n in notes] == ["Created from an OpenURL link from ncbi.nlm.nih.gov:pubmed."]


def test_cli_book_link_then_the_same_book_again_is_flagged(db_file: Path) -> None:
    first = run("import-openurl", WORLDCAT_BOOK, "--patron", "P001", "--db", str(db_file))
    assert first.exit_code == 0, first.output
    # the same book as an 0.1 link with its ISBN-13 hyphenated
    again = "genre=book&title=Cybernetics&aulast=Wiener&isbn=978-0-262-73009-9&sid=worldcat"
    second = run("import-openurl", again, "--patron", "P001", "--db", str(db_file))
    assert second.exit_code == 0, second.output
    requests, _, notes = stored(db_file)
    assert len(requests) == 2
    assert requests[1].duplicate_of_id == requests[0].id
    assert f"Possible duplicate of request {requests[0].id} (New," in second.output
    assert "same ISBN 9780262730099" in second.output
    assert any("Possible duplicate of request" in n.text for n in notes)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["url_ver=Z39.88-2004&rft.genre=book", "--patron", "P001"], "no title, ISBN, ISSN"),
        (["not a link", "--patron", "P001"], "no key=value pairs"),
        ([WORLDCAT_BOOK], "patron: A borrowing request needs the patron's barcode. Give it"),
        ([WORLDCAT_BOOK, "--patron", "P404"], "No patron has the barcode P404"),
        ([WORLDCAT_BOOK, "--patron", "P009"], "Patron Gone Away is not active"),
        (
            ["url_ver=Z39.88-2004&rft.btitle=X&rft.isbn=0-306-40615-3", "--patron", "P001"],
            "isbn: ISBN 0-306-40615-3 has a wrong check digit",
        ),
        (
            ["genre=article&title=Lancet&atitle=A&id=doi:10.1/x", "--patron", "P001"],
            "doi: DOI 10.1/x does not look like",
        ),
        (
            ["url_ver=Z39.88-2004&rft_id=info:doi/10.1038/171737a0", "--patron", "P001"],
            "title: The title is required",
        ),
    ],
)
def test_cli_errors_create_nothing(db_file: Path, args: list[str], words: str) -> None:
    result = run("import-openurl", *args, "--db", str(db_file))
    assert result.exit_code == 1
    assert words in " ".join(result.output.split())
    assert "Traceback" not in result.output
    requests, events, notes = stored(db_file)
    assert (requests, events, notes) == ([], [], [])


# ------------------------------------------------------------------------------ any text at all


# What a title can be once tidied: no control characters, single blanks, nothing at the ends.
texts = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
        min_size=1,
        max_size=60,
    )
    .map(lambda t: " ".join(t.split()))
    .filter(bool)
)


@given(journal=texts, article=texts, author=texts, volume=texts, plus=st.booleans())
def test_any_text_survives_the_round_trip(
    journal: str, article: str, author: str, volume: str, plus: bool
) -> None:
    fields = {
        "url_ver": "Z39.88-2004",
        "rft.genre": "article",
        "rft.jtitle": journal,
        "rft.atitle": article,
        "rft.au": author,
        "rft.volume": volume,
    }
    # '+' for blanks (forms) or %20 (most link builders): both are read
    query = urlencode(fields) if plus else urlencode(fields, quote_via=quote)
    c = parse_openurl(query)
    assert (c.title, c.article_title, c.article_author, c.volume) == (
        journal,
        article,
        author,
        volume,
    )
