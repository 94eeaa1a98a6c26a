"""Citation identifiers: ISBN, ISSN, OCLC number, LCCN, DOI, and the forms the queue searches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ill_tui.identifiers import (
    InvalidIdentifier,
    format_isbn,
    format_issn,
    normalise_doi,
    normalise_isbn,
    normalise_issn,
    normalise_lccn,
    normalise_oclc,
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
