"""Standard identifiers of a citation: check, normalise, format.

ISBN and ISSN checks use python-stdnum. Every ``normalise_*`` function returns the compact form
we store and query with, or raises ``InvalidIdentifier`` with a sentence staff can act on.
"""

from __future__ import annotations

import re

from stdnum import isbn as _isbn
from stdnum import issn as _issn
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength


class InvalidIdentifier(ValueError):
    """An identifier that cannot be right: wrong length, characters or check digit."""


def normalise_isbn(value: str) -> str:
    """Return the ISBN-13 (digits only) of an ISBN-10 or ISBN-13 in any usual spelling.

    >>> normalise_isbn("0-306-40615-2")
    '9780306406157'
    """
    compact = _isbn.compact(value)
    try:
        _isbn.validate(compact)
    except InvalidChecksum:
        raise InvalidIdentifier(f"ISBN {value.strip()} has a wrong check digit.") from None
    except InvalidLength:
        raise InvalidIdentifier(
            f"ISBN {value.strip()} must have 10 or 13 digits (the last of an ISBN-10 may be X)."
        ) from None
    except (InvalidFormat, InvalidComponent):
        raise InvalidIdentifier(f"ISBN {value.strip()} is not an ISBN.") from None
    return _isbn.to_isbn13(compact)


def format_isbn(value: str) -> str:
    """Hyphenate an ISBN for display, or return it unchanged when stdnum cannot."""
    try:
        return str(_isbn.format(value))
    except Exception:  # noqa: BLE001 - display only; an odd value is shown as stored
        return value


def normalise_issn(value: str) -> str:
    """Return the 8-character compact ISSN (``00015547``)."""
    compact = _issn.compact(value)
    try:
        _issn.validate(compact)
    except InvalidChecksum:
        raise InvalidIdentifier(f"ISSN {value.strip()} has a wrong check digit.") from None
    except InvalidLength:
        raise InvalidIdentifier(f"ISSN {value.strip()} must have 8 characters.") from None
    except (InvalidFormat, InvalidComponent):
        raise InvalidIdentifier(f"ISSN {value.strip()} is not an ISSN.") from None
    return str(compact)


def format_issn(value: str) -> str:
    """``00015547`` -> ``0001-5547``."""
    return f"{value[:4]}-{value[4:]}" if len(value) == 8 else value


_OCLC = re.compile(r"^\s*(?:\(OCoLC\))?\s*(?:ocm|ocn|on)?\s*0*(\d{1,12})\s*$", re.IGNORECASE)


def normalise_oclc(value: str) -> str:
    """Return the bare OCLC number from ``ocm00012345``, ``(OCoLC)12345``, ``on1234567890``."""
    match = _OCLC.match(value)
    if not match:
        raise InvalidIdentifier(f"OCLC number {value.strip()} is not digits (ocm/ocn/on allowed).")
    return match.group(1)


_LCCN = re.compile(r"^([a-z]{0,3})(\d{2}|\d{4})-?(\d{1,6})$")


def normalise_lccn(value: str) -> str:
    """LC-normalise an LCCN: ``sn 78-1234`` -> ``sn78001234``."""
    text = re.sub(r"\s+", "", value.lower()).split("/")[0]
    match = _LCCN.match(text)
    if not match:
        raise InvalidIdentifier(f"LCCN {value.strip()} is not an LCCN (e.g. 2001012345).")
    prefix, year, serial = match.groups()
    return f"{prefix}{year}{serial.zfill(6)}"


_DOI = re.compile(r"^10\.\d{4,9}/\S+$")


def normalise_doi(value: str) -> str:
    """Strip ``doi:`` / resolver prefixes and check the DOI's shape (``10.NNNN/suffix``)."""
    text = value.strip()
    text = re.sub(r"^(?:doi:|https?://(?:dx\.)?doi\.org/)", "", text, flags=re.IGNORECASE)
    if not _DOI.match(text):
        raise InvalidIdentifier(f"DOI {value.strip()} does not look like 10.NNNN/suffix.")
    return text


def search_forms(token: str) -> list[str]:
    """The stored forms a typed identifier may match (ISBN-10 is stored as ISBN-13)."""
    compact = re.sub(r"[\s-]", "", token)
    if re.fullmatch(r"\d{9}[\dXx]", compact) and _isbn.is_valid(compact):
        return [_isbn.to_isbn13(compact)]
    if re.fullmatch(r"\d{7}[\dXx]", compact) and _issn.is_valid(compact):
        return [compact.upper()]
    if re.fullmatch(r"\d{13}", compact):
        return [compact]
    return []
