"""Intake: new requests from the form, from an OpenURL citation and from a batch file.

Every way in goes through ``intake_request``: the same checks as the new-request form
(``requests.validate_form``, the patron or partner must exist and be active), the PMID checked
too, and a duplicate check against the same patron's open requests. A duplicate is still
created (staff decide), but marked: ``Request.duplicate_of_id`` points at the request it
repeats, a note in its history says why, and the caller gets the list to show.

Batch files (``import_requests``) are CSV with a header row; the columns are listed in
``BATCH_COLUMNS`` (the new-request form's fields plus ``pmid``). Unknown columns are refused up
front. Every row is checked first; then, in the default ``ALL_OR_NONE`` mode, a file with any
rejected row imports nothing, and in ``ACCEPTED_ONLY`` mode the good rows are imported and the
bad ones reported. Either way the import is one unit of work (the caller's session): a failure
part-way writes nothing.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from sqlmodel import Session

from ill_tui import identifiers
from ill_tui.citation import Citation
from ill_tui.clock import Clock, utcnow
from ill_tui.models import Direction, Note, Request
from ill_tui.services import requests
from ill_tui.services.duplicates import Duplicate, find_duplicates
from ill_tui.services.requests import FORM_FIELDS, RequestForm, ValidationFailed

BATCH_COLUMNS: tuple[str, ...] = (*FORM_FIELDS, "pmid")
BATCH_LIMIT = 100_000  # rows per file; larger files are split by the sender


class IntakeMode(StrEnum):
    """What a batch import does when some rows are rejected."""

    ALL_OR_NONE = "all-or-none"
    ACCEPTED_ONLY = "accepted-only"

    def describe(self) -> str:
        """The mode in words, stated before an import runs."""
        if self is IntakeMode.ALL_OR_NONE:
            return (
                "Mode: all or none. Every row is checked first; if any row is rejected, "
                "nothing is imported."
            )
        return (
            "Mode: accepted rows only. Every row is checked first; the accepted rows are "
            "imported and the rejected rows are reported."
        )


class IntakeFileError(ValueError):
    """The batch file as a whole cannot be used (unreadable, not CSV, bad header)."""


@dataclass(frozen=True)
class Intake:
    """A request that was created, and the open requests it may duplicate."""

    request: Request
    duplicates: list[Duplicate]

    @property
    def duplicate_of(self) -> Duplicate | None:
        """The request this one repeats (the strongest match), if any."""
        return self.duplicates[0] if self.duplicates else None


def form_from_citation(
    citation: Citation,
    *,
    patron: str = "",
    partner: str = "",
    direction: Direction = Direction.BORROWING,
    note: str = "",
) -> RequestForm:
    """The new-request form filled from a citation (the PMID travels beside it, see
    ``intake_request``)."""
    values = citation.values()
    values.pop("pmid", None)
    return RequestForm(
        direction=direction.value,
        service_type=citation.service_type,
        patron=patron,
        partner=partner,
        note=note,
        **values,
    )


def check_pmid(pmid: str) -> str | None:
    """The compact PMID, or None when blank.

    Raises:
        ValidationFailed: ``{"pmid": why}``.
    """
    if not pmid.strip():
        return None
    try:
        return identifiers.normalise_pmid(pmid)
    except identifiers.InvalidIdentifier as exc:
        raise ValidationFailed({"pmid": str(exc)}) from None


def check_form(
    session: Session, *, form: RequestForm, pmid: str = "", clock: Clock = utcnow
) -> None:
    """Every check ``intake_request`` makes, without writing anything.

    Raises:
        ValidationFailed: with one message per wrong field (patron/partner included).
    """
    errors: dict[str, str] = {}
    try:
        check_pmid(pmid)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    try:
        clean = requests.validate_form(form, today=clock().date())
    except ValidationFailed as exc:
        errors.update(exc.errors)
        raise ValidationFailed(errors) from None
    try:
        requests.resolve_party(session, clean)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationFailed(errors)


def intake_request(
    session: Session,
    *,
    form: RequestForm,
    actor: str,
    pmid: str = "",
    clock: Clock = utcnow,
) -> Intake:
    """Check ``form`` (and ``pmid``), store the request, and mark it if it is a duplicate.

    Raises:
        ValidationFailed: one message per wrong field; nothing is written.
    """
    check_form(session, form=form, pmid=pmid, clock=clock)  # every error at once, PMID too
    request = requests.create_request(session, form=form, actor=actor, clock=clock)
    assert request.id is not None
    request.pmid = check_pmid(pmid)
    duplicates = find_duplicates(
        session,
        patron_id=request.patron_id,
        partner_id=request.partner_id,
        citation=request,
        exclude_id=request.id,
    )
    if duplicates:
        first = duplicates[0]
        request.duplicate_of_id = first.request_id
        others = f" (and {len(duplicates) - 1} more)" if len(duplicates) > 1 else ""
        session.add(
            Note(
                request_id=request.id,
                author=actor,
                at=clock(),
                text=f"Possible duplicate of {first.describe()}{others}.",
            )
        )
    session.add(request)
    session.flush()
    return Intake(request=request, duplicates=duplicates)


# -- batch files ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """One reason a row was rejected: its line in the file, the column, and why."""

    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f", {self.field}" if self.field else ""
        return f"line {self.line}{where}: {self.message}"


@dataclass(frozen=True)
class ImportedRow:
    """A row that became a request."""

    line: int
    request_id: int
    duplicate: Duplicate | None


@dataclass
class IntakeReport:
    """What a batch import did: rows read, requests created, every rejected row and why."""

    source: str
    mode: IntakeMode
    rows: int = 0
    imported: list[ImportedRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def rejected_lines(self) -> list[int]:
        """The line numbers of the rejected rows, in file order."""
        return sorted({e.line for e in self.errors})

    @property
    def ok(self) -> bool:
        """True when every row was accepted (and so imported)."""
        return not self.errors

    def lines(self) -> list[str]:
        """The report as lines of text for the command line."""
        rejected = len(self.rejected_lines)
        if rejected and self.mode is IntakeMode.ALL_OR_NONE:
            head = (
                f"{self.source}: nothing imported; {rejected} of {self.rows} rows rejected "
                "(all or none):"
            )
        else:
            head = f"{self.source}: {len(self.imported)} of {self.rows} rows imported" + (
                f", {rejected} rejected:" if rejected else "."
            )
        out = [head] + [f"  {e}" for e in self.errors]
        for row in self.imported:
            if row.duplicate is not None:
                out.append(
                    f"  line {row.line}: request {row.request_id} may duplicate "
                    f"{row.duplicate.describe()}"
                )
        if self.imported:
            ids = [row.request_id for row in self.imported]
            out.append(f"  requests created: {_id_ranges(ids)}")
        return out


def _id_ranges(ids: list[int]) -> str:
    parts: list[str] = []
    start = prev = ids[0]
    for value in [*ids[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ", ".join(parts)


def read_batch(text: str) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for each non-blank record of CSV text with a header row.

    A row whose number of values differs from the header's is returned with the key
    ``"__width__"`` (its number of values) and ``"__header__"`` so the check reports it.

    Raises:
        IntakeFileError: empty, not CSV, or a header with unknown, repeated or missing columns.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise IntakeFileError("The file is empty; it needs a header row.") from None
    except csv.Error as exc:
        raise IntakeFileError(f"line 1: not CSV ({exc}).") from None
    unknown = [h for h in header if h not in BATCH_COLUMNS]
    repeated = sorted({h for h in header if header.count(h) > 1})
    problems = []
    if unknown:
        problems.append("unknown columns " + ", ".join(repr(h) for h in unknown))
    if repeated:
        problems.append("repeated columns " + ", ".join(repeated))
    if "title" not in header:
        problems.append("no title column")
    if problems:
        raise IntakeFileError(
            f"line 1: the header has {'; '.join(problems)}. Nothing was imported. "
            f"Columns: {', '.join(BATCH_COLUMNS)}."
        )
    rows: list[tuple[int, dict[str, str]]] = []
    line = reader.line_num + 1
    try:
        for values in reader:
            if any(v.strip() for v in values):
                if len(rows) >= BATCH_LIMIT:
                    raise IntakeFileError(
                        f"The file has more than {BATCH_LIMIT:,} rows; split it. "
                        "Nothing was imported."
                    )
                if len(values) != len(header):
                    width = {"__width__": str(len(values)), "__header__": str(len(header))}
                    rows.append((line, width))
                else:
                    rows.append((line, dict(zip(header, values, strict=True))))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise IntakeFileError(f"line {reader.line_num}: not CSV ({exc}).") from None
    return rows


def _read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise IntakeFileError(f"{path} does not exist.") from None
    except UnicodeDecodeError as exc:
        raise IntakeFileError(f"{path} is not UTF-8 text ({exc.reason}).") from None
    except OSError as exc:
        raise IntakeFileError(f"Cannot read {path}: {exc.strerror or exc}") from None


def import_requests(
    session: Session,
    source: Path | str,
    *,
    mode: IntakeMode = IntakeMode.ALL_OR_NONE,
    actor: str,
    clock: Clock = utcnow,
    text: str | None = None,
) -> IntakeReport:
    """Import the requests of a CSV batch file in the caller's unit of work.

    Args:
        session: the unit of work; the caller commits (or rolls back on an exception).
        source: the file (read as UTF-8, a byte-order mark allowed) or, with ``text``, a name
            for the report.
        mode: all or none (default), or accepted rows only.
        actor: written into each request's first Event.
        text: the CSV itself, instead of reading ``source``.

    Raises:
        IntakeFileError: the file cannot be read or its header is wrong (nothing imported).
    """
    content = _read_file(Path(source)) if text is None else text
    rows = read_batch(content)
    report = IntakeReport(source=str(source), mode=mode, rows=len(rows))
    good: list[tuple[int, RequestForm, str]] = []
    for line, row in rows:
        if "__width__" in row:
            report.errors.append(
                RowError(
                    line,
                    "",
                    f"has {row['__width__']} values but the header has "
                    f"{row['__header__']} columns.",
                )
            )
            continue
        pmid = row.pop("pmid", "")
        for defaulted in ("direction", "service_type"):
            if not row.get(defaulted, "x").strip():
                del row[defaulted]  # a blank cell means the default: borrowing, Loan
        form = RequestForm(**row)
        try:
            check_form(session, form=form, pmid=pmid, clock=clock)
        except ValidationFailed as exc:
            report.errors.extend(RowError(line, name, msg) for name, msg in exc.errors.items())
            continue
        good.append((line, form, pmid))
    if report.errors and mode is IntakeMode.ALL_OR_NONE:
        return report
    for line, form, pmid in good:
        # rows were checked above; a ValidationFailed here (a patron made inactive meanwhile)
        # propagates, and the caller's unit of work rolls the whole file back
        intake = intake_request(session, form=form, pmid=pmid, actor=actor, clock=clock)
        assert intake.request.id is not None
        report.imported.append(ImportedRow(line, intake.request.id, intake.duplicate_of))
    return report
