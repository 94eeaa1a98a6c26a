"""Citation identifiers: ISBN, ISSN, OCLC number, LCCN, DOI, and the forms the queue searches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ill_tui.identifiers import (
    InvalidIdentifier,
    WrongCheckDigit,
    doi_key,
    format_isbn,
    format_issn,
    isbn10,
    isbn_forms,
    normalise_doi,
    normalise_isbn,
    normalise_issn,
    normalise_lccn,
    normalise_oclc,
    normalise_pmid,
    search_forms,
)

# -------------------------------------------------------------------- check digits, written out


def isbn10_check(first9: str) -> str:
    total = sum((10 - i) * int(d) for i, d in enumerate(first9))
    check = (11 - total % 11) % 11
    return "X" if check == 10 else str(check)


def isbn13_check(first12: str) -> str:
    total = sum((3 if i % 2 else 1) * int(d) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)


def issn_check(first7: str) -> str:
    total = sum((8 - i) * int(d) for i, d in enumerate(first7))
    check = (11 - total % 11) % 11
    return "X" if check == 10 else str(check)


digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


def spelled(draw: Callable[[st.SearchStrategy[Any]], Any], compact: str) -> str:
    """``compact`` as people write it: hyphens or spaces between some characters."""
    out = []
    for i, ch in enumerate(compact):
        if i and draw(st.booleans()):
            out.append(draw(st.sampled_from(["-", " "])))
        out.append(ch)
    return "".join(out)


@st.composite
def isbn10s(draw: st.DrawFn) -> str:
    first9 = "".join(draw(st.lists(digits, min_size=9, max_size=9)))
    return first9 + isbn10_check(first9)


@st.composite
def isbn13s(draw: st.DrawFn) -> str:
    # 979-0 is the ISMN range (printed music), not books.
    prefix = draw(st.sampled_from(["978", "9791", "9798"]))
    rest = "".join(draw(st.lists(digits, min_size=12 - len(prefix), max_size=12 - len(prefix))))
    return prefix + rest + isbn13_check(prefix + rest)


# --------------------------------------------------------------------------------------- ISBN


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("0-306-40615-2", "9780306406157"),
        ("0306406152", "9780306406157"),
        ("0 306 40615 2", "9780306406157"),
        (" 978-0-306-40615-7 ", "9780306406157"),
        ("978 0 306 40615 7", "9780306406157"),
        ("0-8044-2957-X", "9780804429573"),
        ("0-8044-2957-x", "9780804429573"),
        ("080442957X", "9780804429573"),
        ("979-10-90636-07-1", "9791090636071"),
    ],
)
def test_isbn_spellings(typed: str, expected: str) -> None:
    assert normalise_isbn(typed) == expected


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("0-306-40615-3", "check digit"),
        ("978-0-306-40615-8", "check digit"),
        ("0-8044-2957-1", "check digit"),
        ("03064061", "10 or 13 digits"),
        ("97803064061570", "10 or 13 digits"),
        ("", "not an ISBN"),
        ("0-306-4O615-2", "not an ISBN"),  # letter O
        ("X306406152", "not an ISBN"),
        ("977030640615" + isbn13_check("977030640615"), "not an ISBN"),  # ISSN EAN prefix
    ],
)
def test_isbn_refused_with_a_reason(typed: str, why: str) -> None:
    with pytest.raises(InvalidIdentifier, match=why):
        normalise_isbn(typed)


@given(st.data())
def test_generated_isbn10_normalises_to_its_isbn13(data: st.DataObject) -> None:
    isbn10 = data.draw(isbn10s())
    typed = spelled(data.draw, isbn10)
    result = normalise_isbn(typed)
    expected_first12 = "978" + isbn10[:9]
    assert result == expected_first12 + isbn13_check(expected_first12)
    assert normalise_isbn(result) == result  # stable
    assert search_forms(typed.replace(" ", "-")) == [result]


@given(st.data())
def test_generated_isbn13_normalises_to_itself(data: st.DataObject) -> None:
    isbn13 = data.draw(isbn13s())
    assert normalise_isbn(spelled(data.draw, isbn13)) == isbn13
    assert format_isbn(isbn13).replace("-", "") == isbn13


@given(st.data())
def test_changing_one_digit_is_always_refused(data: st.DataObject) -> None:
    isbn = data.draw(st.one_of(isbn10s(), isbn13s()))
    position = data.draw(st.integers(min_value=0, max_value=len(isbn) - 1))
    assume(isbn[position] != "X")
    replacement = data.draw(digits.filter(lambda d: d != isbn[position]))
    broken = isbn[:position] + replacement + isbn[position + 1 :]
    with pytest.raises(InvalidIdentifier):
        normalise_isbn(broken)


# --------------------------------------------------------------------------------------- ISSN


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("0378-5955", "03785955"), ("03785955", "03785955"), (" 0317-8471 ", "03178471"),
     ("2434-561X", "2434561X"), ("2434-561x", "2434561X")],
)  # fmt: skip
def test_issn_spellings(typed: str, expected: str) -> None:
    assert normalise_issn(typed) == expected
    assert format_issn(expected) == f"{expected[:4]}-{expected[4:]}"


@pytest.mark.parametrize(
    ("typed", "why"),
    [("0378-5954", "check digit"), ("0378-595", "8 characters"), ("0378-59555", "8 characters"),
     ("03A8-5955", "not an ISSN")],
)  # fmt: skip
def test_issn_refused(typed: str, why: str) -> None:
    with pytest.raises(InvalidIdentifier, match=why):
        normalise_issn(typed)


@given(first7=st.text(alphabet="0123456789", min_size=7, max_size=7))
def test_generated_issn_round_trips(first7: str) -> None:
    issn = first7 + issn_check(first7)
    hyphenated = format_issn(issn)
    assert normalise_issn(hyphenated) == issn
    assert normalise_issn(hyphenated.lower()) == issn
    assert search_forms(hyphenated) == [issn]
    wrong = first7 + ("0" if issn[-1] != "0" else "1")
    with pytest.raises(InvalidIdentifier, match="check digit"):
        normalise_issn(wrong)


# ------------------------------------------------------------------------------- OCLC, LCCN, DOI


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("12345", "12345"),
        ("ocm00012345", "12345"),
        ("OCM00012345", "12345"),
        ("ocn123456789", "123456789"),
        ("on1234567890", "1234567890"),
        ("(OCoLC)12345", "12345"),
        ("(OCoLC)ocm00012345", "12345"),
        ("(ocolc)00012345", "12345"),
        ("  (OCoLC) 987654 ", "987654"),
    ],
)
def test_oclc_forms(typed: str, expected: str) -> None:
    assert normalise_oclc(typed) == expected


@pytest.mark.parametrize(
    "typed", ["", "ocm", "(OCoLC)", "abc123", "12 345", "1234567890123", "oc12"]
)
def test_oclc_refused(typed: str) -> None:
    with pytest.raises(InvalidIdentifier, match="OCLC"):
        normalise_oclc(typed)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("2001012345", "2001012345"),
        ("2001-12345", "2001012345"),
        ("2001-1", "2001000001"),
        ("85-2", "85000002"),
        ("sn 78-1234", "sn78001234"),
        ("  n 79-21229 ", "n79021229"),
        ("n79-21229", "n79021229"),
        ("75-425165//r75", "75425165"),
        ("SN78-1234", "sn78001234"),
    ],
)
def test_lccn_normalisation(typed: str, expected: str) -> None:
    # The LC normalisation rules: no blanks, no suffix after "/", serial padded to six digits.
    assert normalise_lccn(typed) == expected


@pytest.mark.parametrize("typed", ["", "abcd", "2001-1234567", "sn-78-1234", "1-2"])
def test_lccn_refused(typed: str) -> None:
    with pytest.raises(InvalidIdentifier, match="LCCN"):
        normalise_lccn(typed)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("10.1000/182", "10.1000/182"),
        ("doi:10.1000/182", "10.1000/182"),
        ("DOI:10.1000/182", "10.1000/182"),
        ("https://doi.org/10.1038/nphys1170", "10.1038/nphys1170"),
        ("http://dx.doi.org/10.1038/nphys1170", "10.1038/nphys1170"),
        (" 10.1002/(SICI)1097-4571(199806)49:8<693::AID-ASI4>3.0.CO;2-0 ",
         "10.1002/(SICI)1097-4571(199806)49:8<693::AID-ASI4>3.0.CO;2-0"),
    ],
)  # fmt: skip
def test_doi_shape(typed: str, expected: str) -> None:
    assert normalise_doi(typed) == expected


@pytest.mark.parametrize("typed", ["", "10.1000", "10.1000/", "10.123/abc", "11.1000/x", "doi:",
                                   "10.1000/a b"])  # fmt: skip
def test_doi_refused(typed: str) -> None:
    with pytest.raises(InvalidIdentifier, match="DOI"):
        normalise_doi(typed)


# ----------------------------------------------------------------------------- search forms


@pytest.mark.parametrize(
    ("token", "forms"),
    [
        ("0-306-40615-2", ["9780306406157"]),
        ("9780306406157", ["9780306406157"]),
        ("978-0-306-40615-7", ["9780306406157"]),
        ("0378-5955", ["03785955"]),
        ("2434-561x", ["2434561X"]),
        ("0-306-40615-3", []),  # a bad check digit is not an identifier: searched as words
        ("quantum", []),
        ("1998", []),
    ],
)
def test_search_forms(token: str, forms: list[str]) -> None:
    assert search_forms(token) == forms


# ------------------------------------------------------- labels, both ISBN forms, named errors


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("ISBN 0-306-40615-2", "9780306406157"),
        ("isbn: 0306406152", "9780306406157"),
        ("ISBN-13: 978-0-306-40615-7", "9780306406157"),
        ("ISBN-10 0-306-40615-2", "9780306406157"),
        ("ISBN13 9780306406157", "9780306406157"),
        ("urn:ISBN:0-306-40615-2", "9780306406157"),
        ("0306406152 (pbk.)", "9780306406157"),
        ("ISBN 080442957X (v. 1)", "9780804429573"),
    ],
)
def test_isbn_with_label_or_qualifier(typed: str, expected: str) -> None:
    assert normalise_isbn(typed) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("ISSN 0378-5955", "03785955"), ("ISSN: 0378-5955", "03785955"),
     ("eISSN 2434-561x", "2434561X"), ("urn:ISSN:0378-5955", "03785955")],
)  # fmt: skip
def test_issn_with_label(typed: str, expected: str) -> None:
    assert normalise_issn(typed) == expected


def test_isbn_both_ways() -> None:
    assert isbn10("9780306406157") == "0306406152"
    assert isbn10("978-0-8044-2957-3") == "080442957X"
    assert isbn10("0-306-40615-2") == "0306406152"
    assert isbn10("979-10-90636-07-1") is None  # 979 ISBNs have no ISBN-10
    assert isbn_forms("0306406152") == ("9780306406157", "0306406152")
    assert isbn_forms("9791090636071") == ("9791090636071",)
    with pytest.raises(WrongCheckDigit):
        isbn10("978-0-306-40615-8")


@given(st.data())
def test_generated_isbn10_and_isbn13_round_trip(data: st.DataObject) -> None:
    ten = data.draw(isbn10s())
    thirteen = normalise_isbn(ten)
    assert isbn10(thirteen) == ten.upper()
    assert isbn10(spelled(data.draw, thirteen)) == ten.upper()
    assert isbn_forms(ten) == (thirteen, ten.upper())


@pytest.mark.parametrize(
    ("call", "typed", "kind", "error"),
    [
        (normalise_isbn, "ISBN 0-306-40615-3", "ISBN", WrongCheckDigit),
        (normalise_issn, "0378-5954", "ISSN", WrongCheckDigit),
        (normalise_isbn, "12345", "ISBN", InvalidIdentifier),
        (normalise_oclc, "ocmABC", "OCLC number", InvalidIdentifier),
        (normalise_lccn, "abcd", "LCCN", InvalidIdentifier),
        (normalise_doi, "11.1/x", "DOI", InvalidIdentifier),
        (normalise_pmid, "PMID abc", "PMID", InvalidIdentifier),
    ],
)
def test_errors_name_the_identifier_and_the_reason(
    call: Callable[[str], str], typed: str, kind: str, error: type[InvalidIdentifier]
) -> None:
    with pytest.raises(error) as caught:
        call(typed)
    assert type(caught.value) is error
    assert caught.value.identifier == kind
    assert caught.value.value == typed.strip()
    assert str(caught.value).startswith(f"{kind} {typed.strip()} ")
    assert caught.value.reason in str(caught.value)
    assert isinstance(caught.value, ValueError)  # callers catching ValueError still work


@pytest.mark.parametrize("typed", ["ocm00000000", "(OCoLC)0", "on0000000000", "0"])
def test_oclc_zero_is_refused_not_silently_zero(typed: str) -> None:
    with pytest.raises(InvalidIdentifier, match="zero"):
        normalise_oclc(typed)


def test_oclc_resolver_prefix() -> None:
    assert normalise_oclc("info:oclcnum/ocm00012345") == "12345"
    assert normalise_oclc("info:oclcnum/1234567890") == "1234567890"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("info:lccn/2001012345", "2001012345"), ("LCCN sn 78-1234", "sn78001234"),
     ("lccn: 85-2", "85000002")],
)  # fmt: skip
def test_lccn_with_label(typed: str, expected: str) -> None:
    assert normalise_lccn(typed) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("info:doi/10.1038/nphys1170", "10.1038/nphys1170"),
     ("doi: 10.1038/nphys1170", "10.1038/nphys1170"),
     ("doi.org/10.1038/nphys1170", "10.1038/nphys1170")],
)  # fmt: skip
def test_doi_prefixes(typed: str, expected: str) -> None:
    assert normalise_doi(typed) == expected


def test_doi_key_ignores_case() -> None:
    assert doi_key("10.1038/NPHYS1170") == doi_key(" 10.1038/nphys1170")
    assert doi_key("10.1038/nphys1170") != doi_key("10.1038/nphys1171")


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("15361993", "15361993"),
        ("PMID: 15361993", "15361993"),
        ("pmid 15361993", "15361993"),
        ("info:pmid/15361993", "15361993"),
        ("https://pubmed.ncbi.nlm.nih.gov/15361993/", "15361993"),
        ("http://www.ncbi.nlm.nih.gov/pubmed/15361993", "15361993"),
        ("0015361993", "15361993"),
    ],
)
def test_pmid_forms(typed: str, expected: str) -> None:
    assert normalise_pmid(typed) == expected


@pytest.mark.parametrize("typed", ["", "abc", "1536-1993", "12345678901", "PMID:", "0", "10.1/x"])
def test_pmid_refused(typed: str) -> None:
    with pytest.raises(InvalidIdentifier, match="PMID"):
        normalise_pmid(typed)
