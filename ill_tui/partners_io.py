"""The partner directory in and out of files: CSV (with a header row) or TOML (``[[partner]]``).

The format follows the file's extension, ``.csv`` or ``.toml``. The columns (CSV) or keys (TOML)
are the Partner fields in ``PARTNER_FIELDS``. An import updates the partner with the same agency
id (type and value) or adds a new one. It is all-or-nothing: every row is checked first, and if
any row is wrong nothing is imported and every wrong row is reported with its line number.

Exporting and importing the result gives the same directory back. The demo sandbox's marker
(agency id type ``DEMO``, see ``ill_tui.demo``) is never exported and cannot be imported, so a
directory copied from the sandbox cannot make a live database look like a sandbox.

Exported files contain each partner's ISO 18626 credentials (account id, security code): keep
them like a password file.
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session, col, select

from ill_tui.clock import Clock, utcnow
from ill_tui.demo import DEMO_MARKER_TYPE
from ill_tui.models import Partner
from ill_tui.money import InvalidMoney, check_currency, minor_units

PARTNER_FIELDS: tuple[str, ...] = (
    "agency_id_type", "agency_id_value", "name", "country", "currency", "endpoint_url", "email",
    "account_id", "security_code", "loan_charge", "copy_charge", "loan_period_days", "policies",
    "consortia", "active",
)  # fmt: skip
REQUIRED: tuple[str, ...] = ("agency_id_type", "agency_id_value", "name", "country", "currency")
_OPTIONAL_TEXT = ("endpoint_url", "email", "account_id", "security_code")  # stored as NULL if empty
_LIMITS = {
    "agency_id_type": 16, "agency_id_value": 64, "name": 200, "endpoint_url": 500, "email": 254,
    "account_id": 100, "security_code": 200, "policies": 2000, "consortia": 500,
}  # fmt: skip
_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}
FORMATS = (".csv", ".toml")


class PartnerFileError(ValueError):
    """The file as a whole cannot be used: unknown format, unreadable, or not CSV/TOML."""


@dataclass(frozen=True)
class RowError:
    """One wrong row: its line in the file and everything wrong with it."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ImportReport:
    """What an import did, or, when ``errors`` is not empty, why it did nothing."""

    path: Path
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the file was imported (no row had an error)."""
        return not self.errors

    def lines(self) -> list[str]:
        """The report as lines of text for the command line."""
        if self.errors:
            return [
                f"{self.path}: nothing imported; {len(self.errors)} of {self.rows} rows "
                "have errors:"
            ] + [f"  {e}" for e in self.errors]
        return [
            f"{self.path}: {self.rows} partners read; {self.created} added, "
            f"{self.updated} updated, {self.unchanged} unchanged."
        ]


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise PartnerFileError(
            f"{path}: unknown format {suffix or '(no extension)'!r}; use a .csv or .toml file name."
        )
    return suffix


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def _charge_text(amount: Decimal, currency: str) -> str:
    """``12.5000`` EUR -> ``12.50``; keeps extra precision rather than losing it."""
    try:
        exponent = Decimal(1).scaleb(-minor_units(currency))
    except Exception:  # noqa: BLE001 - an odd currency code: write the amount as stored
        return format(amount.normalize(), "f")
    rounded = amount.quantize(exponent)
    return format(rounded if rounded == amount else amount.normalize(), "f")


def partner_record(partner: Partner) -> dict[str, Any]:
    """A partner as plain values: strings, an int, a bool, None for empty optional fields."""
    record: dict[str, Any] = {name: getattr(partner, name) for name in PARTNER_FIELDS}
    record["loan_charge"] = _charge_text(partner.loan_charge, partner.currency)
    record["copy_charge"] = _charge_text(partner.copy_charge, partner.currency)
    return record


_TOML_ESCAPES = {
    "\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b",
    "\f": "\\f",
}  # fmt: skip


def _toml_string(value: str) -> str:
    """A TOML basic string: the short escapes where TOML has one, \\uXXXX for other controls."""
    out = []
    for ch in value:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _toml_string(str(value))


def to_toml(records: Iterable[Mapping[str, Any]]) -> str:
    """TOML text with one ``[[partner]]`` table per record; None values are left out."""
    parts = [
        "# ill-tui partner directory. Charges are in the partner's currency.\n"
        "# Contains ISO 18626 credentials (account_id, security_code): keep it private.\n"
    ]
    for record in records:
        lines = ["[[partner]]"]
        for name in PARTNER_FIELDS:
            value = record.get(name)
            if value is not None:
                lines.append(f"{name} = {_toml_value(value)}")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def to_csv(records: Iterable[Mapping[str, Any]]) -> str:
    """CSV text with a header row of ``PARTNER_FIELDS``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PARTNER_FIELDS)
    for record in records:
        row = []
        for name in PARTNER_FIELDS:
            value = record.get(name)
            if value is None:
                row.append("")
            elif isinstance(value, bool):
                row.append("true" if value else "false")
            else:
                row.append(str(value))
        writer.writerow(row)
    return buffer.getvalue()


def export_partners(session: Session, path: Path | str) -> int:
    """Write every partner to ``path`` (.csv or .toml); return how many were written.

    Raises:
        PartnerFileError: the extension is neither .csv nor .toml, or the file cannot be written.
    """
    path = Path(path)
    kind = _format_of(path)
    partners = session.exec(
        select(Partner)
        .where(col(Partner.agency_id_type) != DEMO_MARKER_TYPE)  # not a library: see demo.py
        .order_by(col(Partner.agency_id_type), col(Partner.agency_id_value))
    ).all()
    records = [partner_record(p) for p in partners]
    text = to_csv(records) if kind == ".csv" else to_toml(records)
    try:
        path.write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        raise PartnerFileError(f"Cannot write {path}: {exc.strerror or exc}") from exc
    return len(records)


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PartnerFileError(f"{path} does not exist.") from None
    except UnicodeDecodeError as exc:
        raise PartnerFileError(f"{path} is not UTF-8 text ({exc.reason}).") from None
    except OSError as exc:
        raise PartnerFileError(f"Cannot read {path}: {exc.strerror or exc}") from None


def read_csv_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) for each record of CSV text with a header row.

    Raises:
        PartnerFileError: no header, or a header with unknown or missing required columns.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise PartnerFileError("The file is empty; it needs a header row.") from None
    except csv.Error as exc:
        raise PartnerFileError(f"line 1: not CSV ({exc}).") from None
    header = [h.strip() for h in header]
    unknown = [h for h in header if h not in PARTNER_FIELDS]
    missing = [f for f in REQUIRED if f not in header]
    if unknown or missing:
        problems = []
        if unknown:
            problems.append("unknown columns " + ", ".join(unknown))
        if missing:
            problems.append("missing columns " + ", ".join(missing))
        raise PartnerFileError(
            f"line 1: header has {'; '.join(problems)}. Columns: {', '.join(PARTNER_FIELDS)}."
        )
    rows: list[tuple[int, dict[str, Any]]] = []
    line = reader.line_num + 1
    try:
        for values in reader:
            if any(v.strip() for v in values):
                if len(values) != len(header):
                    rows.append((line, {"__width__": len(values), "__expected__": len(header)}))
                else:
                    rows.append((line, dict(zip(header, values, strict=True))))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise PartnerFileError(f"line {reader.line_num}: not CSV ({exc}).") from None
    return rows


_TABLE_LINE = re.compile(r"^[ \t]*\[\[[ \t]*partner[ \t]*\]\]", re.MULTILINE)


def read_toml_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number of its ``[[partner]]`` header, table) for each partner in TOML text.

    Raises:
        PartnerFileError: not TOML, or no ``[[partner]]`` array of tables.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PartnerFileError(f"not valid TOML: {exc}") from None
    other = [k for k in data if k != "partner"]
    if other:
        raise PartnerFileError(
            f"unknown top-level keys {', '.join(other)}; partners go in [[partner]] tables."
        )
    tables = data.get("partner", [])
    if not isinstance(tables, list):
        raise PartnerFileError("'partner' must be an array of tables: write [[partner]].")
    starts = [text.count("\n", 0, m.start()) + 1 for m in _TABLE_LINE.finditer(text)]
    rows = []
    for i, table in enumerate(tables):
        line = starts[i] if i < len(starts) else 0
        rows.append((line, table))
    return rows


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def validate_row(row: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Check one row; return the typed values and the list of problems (empty when good)."""
    if "__width__" in row:
        return {}, [f"has {row['__width__']} fields, the header has {row['__expected__']}"]
    problems: list[str] = []
    values: dict[str, Any] = {}
    unknown = [k for k in row if k not in PARTNER_FIELDS]
    if unknown:
        problems.append("unknown keys " + ", ".join(map(str, unknown)))
    for name in REQUIRED:
        if not _text(row.get(name)):
            problems.append(f"{name} is required")
    for name, limit in _LIMITS.items():
        text = _text(row.get(name))
        if len(text) > limit:
            problems.append(f"{name} is longer than {limit} characters")
        values[name] = text
    for name in _OPTIONAL_TEXT:
        values[name] = values[name] or None
    values["agency_id_type"] = values["agency_id_type"].upper()

    country = _text(row.get("country")).upper()
    if country and not re.fullmatch(r"[A-Z]{2}", country):
        problems.append(f"country {country!r} must be a two-letter ISO 3166 code, e.g. DK")
    values["country"] = country

    currency = _text(row.get("currency"))
    values["currency"] = currency.upper()
    if currency:
        try:
            values["currency"] = check_currency(currency)
        except InvalidMoney as exc:
            problems.append(str(exc).rstrip("."))

    for name in ("loan_charge", "copy_charge"):
        raw = row.get(name)
        text = _text(raw)
        if not text:
            values[name] = Decimal("0")
            continue
        if isinstance(raw, bool):
            problems.append(f"{name} must be an amount, e.g. 12.50")
            continue
        try:
            amount = Decimal(text)
        except InvalidOperation:
            problems.append(f"{name} {text!r} is not an amount, e.g. 12.50")
            continue
        if not amount.is_finite() or amount < 0:
            problems.append(f"{name} {text!r} must be zero or more")
        elif amount != amount.quantize(Decimal("0.0001")) or amount >= Decimal("1e10"):
            problems.append(f"{name} {text!r} has more than 4 decimals or is too large")
        else:
            values[name] = amount

    raw_days = row.get("loan_period_days")
    days_text = _text(raw_days)
    values["loan_period_days"] = 28
    if days_text:
        if isinstance(raw_days, bool) or not re.fullmatch(r"[+-]?\d+", days_text):
            problems.append(f"loan_period_days {days_text!r} must be a whole number of days")
        elif not 0 < int(days_text) <= 3650:
            problems.append(f"loan_period_days {days_text} must be between 1 and 3650")
        else:
            values["loan_period_days"] = int(days_text)

    raw_active = row.get("active")
    values["active"] = True
    if isinstance(raw_active, bool):
        values["active"] = raw_active
    elif _text(raw_active):
        flag = _text(raw_active).lower()
        if flag in _TRUE:
            values["active"] = True
        elif flag in _FALSE:
            values["active"] = False
        else:
            problems.append(f"active {_text(raw_active)!r} must be true or false")

    url = values["endpoint_url"]
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or " " in url:
            problems.append(
                f"endpoint_url {url!r} must be an http(s) URL, e.g. https://ill.example.org/iso18626"
            )
    email = values["email"]
    if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        problems.append(f"email {email!r} is not an e-mail address")
    return values, problems


def check_rows(
    rows: list[tuple[int, dict[str, Any]]],
) -> tuple[list[dict[str, Any]], list[RowError]]:
    """Validate every row (and that no agency id appears twice); collect every error."""
    good: list[dict[str, Any]] = []
    errors: list[RowError] = []
    seen: dict[tuple[str, str], int] = {}
    for line, row in rows:
        values, problems = validate_row(row)
        if values.get("agency_id_type") == DEMO_MARKER_TYPE:
            # Importing the marker would let `ill-tui demo` wipe this database.
            problems.append(f"agency_id_type {DEMO_MARKER_TYPE} is reserved for the demo sandbox")
        if not problems:
            key = (values["agency_id_type"], values["agency_id_value"])
            if key in seen:
                problems.append(f"agency id {key[0]}:{key[1]} already appears on line {seen[key]}")
            else:
                seen[key] = line
        if problems:
            errors.append(RowError(line, "; ".join(problems) + "."))
        else:
            good.append(values)
    return good, errors


def import_partners(session: Session, path: Path | str, *, clock: Clock = utcnow) -> ImportReport:
    """Add or update partners from ``path`` (.csv or .toml), all or nothing.

    Each row updates the partner with the same agency id type and value, or adds one. If any
    row is wrong, nothing is changed and the report lists every wrong row with its line.
    The caller's unit of work commits.

    Raises:
        PartnerFileError: unknown extension, unreadable file, or not CSV/TOML at all.
    """
    path = Path(path)
    kind = _format_of(path)
    text = _read(path)
    rows = read_csv_rows(text) if kind == ".csv" else read_toml_rows(text)
    report = ImportReport(path=path, rows=len(rows))
    good, errors = check_rows(rows)
    if errors:
        report.errors = errors
        return report
    existing = {(p.agency_id_type, p.agency_id_value): p for p in session.exec(select(Partner))}
    now = clock()
    for values in good:
        partner = existing.get((values["agency_id_type"], values["agency_id_value"]))
        if partner is None:
            session.add(Partner(**values, created_at=now, updated_at=now))
            report.created += 1
            continue
        changed = {k: v for k, v in values.items() if getattr(partner, k) != v}
        if not changed:
            report.unchanged += 1
            continue
        for name, value in changed.items():
            setattr(partner, name, value)
        partner.updated_at = now
        partner.version += 1
        session.add(partner)
        report.updated += 1
    session.flush()
    return report
