"""The demo sandbox: realistic synthetic ILL data for training, demos and benchmarks.

``build_demo`` wipes the rows of the demo tables (notes, events, rota, requests, patrons,
partners) and fills them again with partners in a dozen countries, patrons, and requests of both
directions in every status, each with an event history that is a legal path through the
workflow. The same seed (and ``now``) always gives the same data.

It is built for size: a million requests with their events load in a few minutes. Rows are
made as plain tuples and written with the driver's ``executemany`` in one transaction; on SQLite
the text-index triggers and the request/event indexes are dropped during the load and recreated
afterwards from the very SQL the migration stored, then the FTS5 index is rebuilt in one pass.

A database made here carries a marker: an inactive partner with agency id ``DEMO:ill-tui-
sandbox``. ``build_demo`` refuses to wipe a database that holds data but no marker (a live
database), unless ``force=True``.
"""

from __future__ import annotations

import bisect
import multiprocessing
import os
import random
import time
import unicodedata
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Engine

from ill_tui import workflow
from ill_tui.clock import as_utc, utcnow
from ill_tui.models import Direction, ServiceType, Status

Progress = Callable[[str, int, int], None]

DEMO_MARKER_TYPE = "DEMO"
DEMO_MARKER_VALUE = "ill-tui-sandbox"
SIMULATOR_URL = "http://127.0.0.1:8626/iso18626"

# Children first, so rows can be deleted in this order.
DEMO_TABLES = ("note", "event", "rota_entry", "request", "patron", "partner")

BATCH = 20_000  # requests per executemany batch
S = Status
D = Direction


class NotADemoDatabase(RuntimeError):
    """The database holds data that ``build_demo`` did not make; it will not wipe it."""


@dataclass
class DemoSummary:
    """What ``build_demo`` made."""

    partners: int = 0
    countries: int = 0
    currencies: int = 0
    patrons: int = 0
    requests: int = 0
    events: int = 0
    notes: int = 0
    rota_entries: int = 0
    by_status: dict[tuple[str, str], int] = field(default_factory=dict)
    seconds: float = 0.0

    def per_direction(self) -> dict[str, int]:
        """Requests per direction."""
        totals: Counter[str] = Counter()
        for (direction, _status), n in self.by_status.items():
            totals[direction] += n
        return dict(totals)

    def lines(self) -> list[str]:
        """The summary as lines of text, for the command line."""
        out = [
            f"Partners: {self.partners} in {self.countries} countries, "
            f"{self.currencies} currencies",
            f"Patrons: {self.patrons}",
            f"Requests: {self.requests} "
            + "("
            + ", ".join(f"{d} {n}" for d, n in sorted(self.per_direction().items()))
            + ")",
            f"Events: {self.events}; notes: {self.notes}; rota entries: {self.rota_entries}",
        ]
        for direction in Direction:
            counts = ", ".join(
                f"{s.value} {self.by_status.get((direction.value, s.value), 0)}"
                for s in workflow.STATUSES[direction]
            )
            out.append(f"  {direction.value}: {counts}")
        out.append(f"Built in {self.seconds:.1f} s")
        return out


# --------------------------------------------------------------------------------------------
# Partners
# --------------------------------------------------------------------------------------------

# type | value | name | country | currency | loan charge | copy charge | loan days | consortia |
# active. Parsed by _partner_table(); charges are in the partner's own currency.
_PARTNER_TABLE = """
OCLC|EYM|University of Michigan Library|US|USD|0|0|42|BTAA,RAPID|yes
OCLC|OSU|Ohio State University Libraries|US|USD|0|0|42|BTAA,OHIOLINK|yes
OCLC|CUY|University of California, Berkeley Library|US|USD|25.00|15.00|28|RAPID|yes
OCLC|COO|Cornell University Library|US|USD|30.00|18.00|56|BORROWDIRECT,RAPID|yes
OCLC|IXA|University of Texas Libraries|US|USD|20.00|12.50|42|RAPID|yes
OCLC|NYP|The New York Public Library|US|USD|35.00|20.00|28||yes
ISIL|US-DLC|Library of Congress|US|USD|0|0|21||yes
ISIL|CA-OTU|University of Toronto Libraries|CA|CAD|30.00|15.00|42|OCUL,RAPID|yes
ISIL|CA-QMM|McGill University Library|CA|CAD|25.00|12.00|28|BCI|yes
ISIL|CA-BVAU|University of British Columbia Library|CA|CAD|30.00|15.00|28|COPPUL|yes
ISIL|GB-UkBL|The British Library|GB|GBP|23.50|14.25|28||yes
ISIL|GB-UkOxU|Bodleian Libraries, University of Oxford|GB|GBP|20.00|11.00|28|RLUK|yes
ISIL|GB-UkEU|University of Edinburgh Library|GB|GBP|15.00|9.50|28|RLUK,SCURL|no
ISIL|DE-1|Staatsbibliothek zu Berlin – Preußischer Kulturbesitz|DE|EUR|8.00|6.00|28|SUBITO,GBV|yes
ISIL|DE-12|Bayerische Staatsbibliothek|DE|EUR|8.00|6.00|28|SUBITO,BVB|yes
ISIL|DE-7|Staats- und Universitätsbibliothek Göttingen|DE|EUR|8.00|5.50|28|SUBITO,GBV|yes
ISIL|DE-89|TIB – Leibniz-Informationszentrum Technik und Naturwiss.|DE|EUR|12.00|9.00|28|SUBITO|yes
ISIL|FR-751052105|Bibliothèque nationale de France|FR|EUR|15.00|10.00|21||yes
ISIL|FR-751052116|Bibliothèque interuniversitaire de la Sorbonne|FR|EUR|10.00|8.00|28|SUDOC-PEB|yes
ISIL|FR-693872301|Bibliothèque municipale de Lyon|FR|EUR|9.00|6.00|28|SUDOC-PEB|no
ISIL|NL-HaKB|Koninklijke Bibliotheek|NL|EUR|12.50|8.50|28|NCC|yes
ISIL|NL-LeU|Universitaire Bibliotheken Leiden|NL|EUR|10.00|7.50|28|NCC|yes
ISIL|DK-820010|Det Kgl. Bibliotek|DK|DKK|0|0|30|DANBIB,NORDIC|yes
ISIL|DK-775100|Aarhus Universitetsbibliotek|DK|DKK|75.00|50.00|30|DANBIB,NORDIC|yes
ISIL|SE-S|Kungliga biblioteket|SE|SEK|0|0|30|LIBRIS,NORDIC|yes
ISIL|SE-Uu|Uppsala universitetsbibliotek|SE|SEK|150.00|100.00|30|LIBRIS,NORDIC|yes
ISIL|SE-L|Lunds universitetsbibliotek|SE|SEK|150.00|100.00|30|LIBRIS,NORDIC|yes
ISIL|NO-0030100|Nasjonalbiblioteket|NO|NOK|0|0|28|BIBSYS,NORDIC|yes
ISIL|NO-0160100|Universitetsbiblioteket i Bergen|NO|NOK|120.00|80.00|28|BIBSYS,NORDIC|yes
ISIL|AU-ANL|National Library of Australia|AU|AUD|28.60|16.50|42|LIBRARIESAUSTRALIA|yes
ISIL|AU-VU|University of Melbourne Library|AU|AUD|28.60|16.50|42|LIBRARIESAUSTRALIA,CAUL|yes
ISIL|JP-1000001|国立国会図書館 National Diet Library|JP|JPY|2500|1200|30|NACSIS-ILL|yes
ISIL|JP-1000318|京都大学附属図書館 Kyoto University Library|JP|JPY|2000|1000|30|NACSIS-ILL|no
ISIL|CH-000003-X|ETH-Bibliothek Zürich|CH|CHF|12.00|8.00|28|SLSP|yes
ISIL|CH-000015-0|Universitätsbibliothek Basel|CH|CHF|12.00|8.00|28|SLSP|yes
"""


def _partner_table() -> list[tuple[str, str, str, str, str, str, str, int, str, bool]]:
    rows = []
    for line in _PARTNER_TABLE.strip().splitlines():
        kind, value, name, country, currency, loan, copy, days, consortia, active = line.split("|")
        rows.append(
            (
                kind,
                value,
                name,
                country,
                currency,
                loan,
                copy,
                int(days),
                consortia,
                active == "yes",
            )
        )
    return rows


_POLICIES = (
    "Loans to academic libraries only; no renewals on items published before 1900.",
    "Copies delivered as PDF by e-mail within 3 working days; loans by tracked post.",
    "Reading-room use only for rare items. IFLA vouchers accepted.",
    "Reciprocal: no charge for consortium members. Renewals by request, one per loan.",
    "Theses and dissertations are not lent; copies of chapters on request.",
    "Electronic resources: copies permitted under licence terms (print-and-send).",
    "Loan period starts on the date of dispatch. Return by tracked and insured post.",
)


def _partner_rows(now_s: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i, (
        kind,
        value,
        name,
        country,
        currency,
        loan,
        copy,
        period,
        consortia,
        active,
    ) in enumerate(_partner_table(), start=1):
        slug = value.lower().replace("-", "").replace(":", "")
        domain = {"US": "edu", "GB": "ac.uk", "AU": "edu.au", "JP": "ac.jp"}.get(
            country, country.lower()
        )
        rows.append(
            {
                "id": i,
                "agency_id_type": kind,
                "agency_id_value": value,
                "name": name,
                "country": country,
                "currency": currency,
                "endpoint_url": SIMULATOR_URL,
                "email": f"ill@{slug}.example.{domain}",
                "account_id": f"{slug}-ill",
                "security_code": f"demo-{zlib.crc32(value.encode()):08x}",
                "loan_charge": Decimal(loan),
                "copy_charge": Decimal(copy),
                "loan_period_days": period,
                "policies": _POLICIES[i % len(_POLICIES)],
                "consortia": consortia,
                "active": active,
                "created_at": now_s - 800 * 86400 + i * 3600,
            }
        )
    rows.append(
        {
            "id": len(rows) + 1,
            "agency_id_type": DEMO_MARKER_TYPE,
            "agency_id_value": DEMO_MARKER_VALUE,
            "name": "ill-tui demo sandbox (marker, not a library)",
            "country": "ZZ",
            "currency": "XXX",
            "endpoint_url": None,
            "email": None,
            "account_id": None,
            "security_code": None,
            "loan_charge": Decimal("0"),
            "copy_charge": Decimal("0"),
            "loan_period_days": 28,
            "policies": "Marks this database as a demo sandbox: `ill-tui demo` may wipe it.",
            "consortia": "",
            "active": False,
            "created_at": now_s,
        }
    )
    return rows


# --------------------------------------------------------------------------------------------
# Word lists
# --------------------------------------------------------------------------------------------

_FIRST = (
    "Aaliyah", "Ahmed", "Aiko", "Alejandro", "Amara", "Anders", "Ángel", "Anouk", "Bao",
    "Beatriz", "Björn", "Camille", "Chiara", "Chidi", "Daniel", "Dagný", "Diego", "Elif", "Emma",
    "Éloïse", "Farah", "Françoise", "Gabriel", "Giulia", "Hana", "Hiroshi", "Ingrid", "Isabel",
    "Jakub", "Jana", "Javier", "Jiří", "Johanna", "José", "Julia", "Kwame", "Lars", "Léa", "Liam",
    "Lucía", "Magnus", "Maja", "María", "Mateus", "Mei", "Mohammed", "Nadia", "Niamh", "Noah",
    "Olga", "Oluwaseun", "Paweł", "Priya", "Rafael", "Ravi", "Renée", "Ruth", "Sakura", "Samuel",
    "Saoirse", "Siddharth", "Sigrún", "Sofía", "Søren", "Tomás", "Thandiwe", "Ulla", "Valentina",
    "Wei", "Yusuf", "Zeynep", "Zoë",
)  # fmt: skip
_LAST = (
    "Abernathy", "Adeyemi", "Álvarez", "Andersen", "Bauer", "Becker", "Bergström", "Brennan",
    "Castillo", "Chen", "Čapek", "Dąbrowski", "Dubois", "Eriksson", "Fernández", "Fischer",
    "García", "Gonçalves", "Gupta", "Hansen", "Hernández", "Horvath", "Ibrahim", "Ivanova",
    "Jensen", "Johansson", "Kaur", "Kim", "Kowalski", "Lefèvre", "Li", "López", "Mäkinen",
    "Martin", "Mendoza", "Müller", "Nakamura", "Nguyen", "Novák", "Nowak", "O'Brien", "Okafor",
    "Olsen", "Park", "Pérez", "Petersen", "Rossi", "Sánchez", "Schmidt", "Silva", "Singh",
    "Søndergaard", "Suzuki", "Takahashi", "Tanaka", "Thompson", "Van der Berg", "Wang",
    "Weiß", "Williams", "Wiśniewski", "Yamamoto", "Yılmaz", "Zhang", "Øster",
)  # fmt: skip
_CATEGORIES = ("faculty", "graduate", "graduate", "undergraduate", "undergraduate", "staff")
_DEPARTMENTS = (
    "History", "Chemistry", "Comparative Literature", "Economics", "Nursing", "Physics",
    "Philosophy", "Music", "Linguistics", "Mechanical Engineering", "Sociology", "Mathematics",
    "Art History", "Biology", "Computer Science", "Law", "Medicine", "Political Science",
    "Classics", "Education", "Geography", "Anthropology", "Psychology", "Scandinavian Studies",
)  # fmt: skip
_STAFF = (
    "Ana Souza", "Bjørn Madsen", "Chloé Martin", "Dmitri Volkov", "Emily Chen",
    "Fatima Al-Sayed", "Gareth Jones", "Hana Kobayashi", "Ingrid Larsen", "José Hernández",
)  # fmt: skip

_TOPICS = (
    "Medieval Trade", "Quantum Materials", "Colonial Archives", "Urban Ecology", "Baroque Music",
    "Protein Folding", "Labour Markets", "Nordic Sagas", "Climate Policy", "Public Health",
    "Byzantine Art", "Graph Theory", "Migration", "Romantic Poetry", "Soil Microbiology",
    "Monetary Policy", "Early Modern Printing", "Cognitive Development", "Glaciology",
    "Maritime Law", "Renaissance Florence", "Machine Learning", "Ottoman Cities",
    "Indigenous Languages", "Photochemistry", "Medical Ethics", "Cold War Diplomacy",
    "Jazz Improvisation", "Bronze Age Europe", "Algebraic Topology", "Epidemiology",
    "Film Noir", "Coral Reefs", "Reformation Theology", "Water Rights", "Sign Languages",
)  # fmt: skip
_FORMS = (
    "{t}: A History", "The Politics of {t}", "{t} in Context", "Rethinking {t}",
    "A Companion to {t}", "{t} and Its Discontents", "Essays on {t}", "Handbook of {t}",
    "{t}: Theory and Practice", "New Perspectives on {t}", "The Cambridge Guide to {t}",
    "{t}: Sources and Interpretations", "Introduction to {t}", "{t} Reconsidered",
    "Studien zur Geschichte: {t}", "Histoire et mémoire : {t}", "Kritische Beiträge zu {t}",
    "Études sur {t}", "Forskning i {t}", "Perspektiv på {t}",
)  # fmt: skip
_ARTICLE_FORMS = (
    "Evidence for {a} in {t}", "A reassessment of {a} and {t}", "{a}: lessons from {t}",
    "Modelling {a} across {t}", "The role of {a} in {t}", "Towards a theory of {a}",
    "{a} revisited: a case study in {t}", "Measuring {a} in {t}", "Notes on {a}",
)  # fmt: skip
_ASPECTS = (
    "network effects", "spatial variation", "long-term change", "gender and power",
    "thermal stability", "archival silences", "cross-border exchange", "material culture",
    "early intervention", "institutional memory", "causal inference", "narrative voice",
    "isotope ratios", "population dynamics", "régime change", "öffentliche Meinung",
)  # fmt: skip
# (name, place, ISBN registrant prefix without the 978: group + publisher)
_PUBLISHERS = (
    ("Oxford University Press", "Oxford", "019"),
    ("Cambridge University Press", "Cambridge", "0521"),
    ("Routledge", "London", "0415"),
    ("University of Chicago Press", "Chicago", "0226"),
    ("Princeton University Press", "Princeton", "0691"),
    ("MIT Press", "Cambridge, Mass.", "0262"),
    ("Springer", "Berlin", "3540"),
    ("De Gruyter", "Berlin", "311"),
    ("Mohr Siebeck", "Tübingen", "316"),
    ("Gallimard", "Paris", "207"),
    ("Presses universitaires de France", "Paris", "213"),
    ("Gyldendal", "København", "8702"),
    ("Museum Tusculanums Forlag", "København", "8772"),
    ("Natur & Kultur", "Stockholm", "9127"),
    ("Universitetsforlaget", "Oslo", "8215"),
    ("Brill", "Leiden", "9004"),
    ("Amsterdam University Press", "Amsterdam", "9053"),
    ("Iwanami Shoten", "Tōkyō", "400"),
    ("Melbourne University Press", "Melbourne", "0522"),
    ("McGill-Queen's University Press", "Montreal", "0773"),
)
_EDITIONS = (None, None, None, None, "2nd ed.", "3rd ed.", "Rev. ed.", "2. Aufl.")
# (title, abbreviation for DOIs, DOI prefix)
_JOURNALS = (
    ("Journal of Economic History", "jeh", "10.1017"),
    ("Past & Present", "past", "10.1093"),
    ("Physical Review B", "prb", "10.1103"),
    ("Journal of the American Chemical Society", "jacs", "10.1021"),
    ("The Lancet", "lancet", "10.1016"),
    ("Speculum", "spec", "10.1086"),
    ("Journal of Linguistics", "jlin", "10.1017"),
    ("Ecology Letters", "ele", "10.1111"),
    ("Historische Zeitschrift", "hzhz", "10.1515"),
    ("Annales. Histoire, Sciences Sociales", "ahss", "10.1017"),
    ("Scandinavian Journal of History", "sjh", "10.1080"),
    ("Journal of Musicology", "jm", "10.1525"),
    ("Nature Chemistry", "nchem", "10.1038"),
    ("American Political Science Review", "apsr", "10.1017"),
    ("Journal of Glaciology", "jog", "10.1017"),
    ("Medical History", "mdh", "10.1017"),
    ("Mind", "mind", "10.1093"),
    ("Topology and its Applications", "topol", "10.1016"),
    ("Acta Archaeologica", "aca", "10.1163"),
    ("Journal of Law and Society", "jls", "10.1111"),
    ("Tidsskrift for Samfunnsforskning", "tfs", "10.18261"),
    ("Zeitschrift für Sprachwissenschaft", "zfsw", "10.1515"),
)

_NOTES = (
    "Patron asked to be e-mailed when it arrives.",
    "Checked local holdings and the consortium catalogue: not owned.",
    "Lender asks for in-library use only; patron informed.",
    "Citation corrected: the patron had the wrong volume.",
    "Patron will collect at the Science Library desk.",
    "Lender's invoice received; forwarded to acquisitions.",
    "Phoned the lender; they expect to ship next week.",
    "Item arrived with a damaged spine; noted on the slip.",
    "Renewal requested by the patron; waiting for the lender.",
    "Copy is poor quality on pages 4-5; asked for a rescan.",
)

# Reasons by (direction, target status). Only statuses that require a reason are listed.
_REASONS: dict[tuple[D, S], tuple[str, ...]] = {
    (D.BORROWING, S.CANCELLED): (
        "Patron no longer needs it", "Duplicate request", "Patron found a copy locally",
        "Cost exceeds limit", "Needed-by date passed", "Available as open access",
    ),
    (D.BORROWING, S.UNFILLED): (
        "Not on shelf", "In use", "Non-circulating", "Not owned", "Lost", "Policy problem",
        "Volume not yet received",
    ),
    (D.BORROWING, S.RETRY_POSSIBLE): (
        "Cost exceeds limit", "Not found as cited", "On order, retry later",
        "Loan condition: library use only",
    ),
    (D.BORROWING, S.RECALLED): ("Needed by a local user", "Needed for course reserve"),
    (D.BORROWING, S.COMPLETED_WITHOUT_RETURN): (
        "Lost in transit, replacement fee paid", "Patron lost the item, fee settled",
        "Damaged beyond repair, invoiced",
    ),
    (D.LENDING, S.CANCELLED): (
        "Cancelled by the borrowing library", "Borrower found another source",
    ),
    (D.LENDING, S.UNFILLED): (
        "Not on shelf", "In use", "Non-circulating", "Not owned", "Too fragile to lend",
        "Lost",
    ),
    (D.LENDING, S.RETRY_POSSIBLE): (
        "Cost exceeds limit", "Not found as cited", "Loan condition: library use only",
        "On loan, retry after the due date",
    ),
    (D.LENDING, S.RECALLED): ("Needed by a local user", "Needed for course reserve"),
    (D.LENDING, S.COMPLETED_WITHOUT_RETURN): (
        "Lost in transit, replacement fee invoiced", "Borrower reports item lost, invoiced",
    ),
}  # fmt: skip
_EXHAUSTED = "Rota exhausted: no lender can supply"

# --------------------------------------------------------------------------------------------
# The workflow walks
# --------------------------------------------------------------------------------------------

_W = dict[S, dict[S, float]]

_BORROW_COMMON: _W = {
    S.NEW: {S.VERIFYING: 70, S.SOURCING: 27, S.CANCELLED: 3},
    S.VERIFYING: {S.SOURCING: 93, S.NEW: 3, S.CANCELLED: 4},
    S.SOURCING: {S.REQUEST_RECEIVED: 98, S.CANCELLED: 2},
    S.RETRY_POSSIBLE: {S.SOURCING: 88, S.CANCELLED: 12},
    S.UNFILLED: {S.SOURCING: 92, S.CANCELLED: 8},
}
_BORROW_LOAN: _W = {
    **_BORROW_COMMON,
    S.REQUEST_RECEIVED: {
        S.EXPECT_TO_SUPPLY: 35, S.WILL_SUPPLY: 20, S.LOANED: 20, S.UNFILLED: 18,
        S.RETRY_POSSIBLE: 4, S.CANCELLED: 3,
    },
    S.EXPECT_TO_SUPPLY: {
        S.WILL_SUPPLY: 45, S.LOANED: 35, S.UNFILLED: 12, S.RETRY_POSSIBLE: 4, S.CANCELLED: 4,
    },
    S.WILL_SUPPLY: {S.LOANED: 93, S.UNFILLED: 5, S.CANCELLED: 2},
    S.LOANED: {S.RECEIVED: 96, S.OVERDUE: 1, S.RECALLED: 1, S.COMPLETED_WITHOUT_RETURN: 2},
    S.RECEIVED: {S.CHECKED_OUT: 90, S.RETURNED: 7, S.RECALLED: 3},
    S.CHECKED_OUT: {S.RETURNED: 85, S.OVERDUE: 10, S.RECALLED: 3, S.COMPLETED_WITHOUT_RETURN: 2},
    S.OVERDUE: {S.RETURNED: 80, S.RECALLED: 10, S.COMPLETED_WITHOUT_RETURN: 10},
    S.RECALLED: {S.RETURNED: 85, S.OVERDUE: 10, S.COMPLETED_WITHOUT_RETURN: 5},
    S.RETURNED: {S.LOAN_COMPLETED: 100},
}  # fmt: skip
_BORROW_COPY: _W = {
    **_BORROW_COMMON,
    S.REQUEST_RECEIVED: {
        S.EXPECT_TO_SUPPLY: 30, S.WILL_SUPPLY: 10, S.COPY_COMPLETED: 35, S.UNFILLED: 20,
        S.RETRY_POSSIBLE: 3, S.CANCELLED: 2,
    },
    S.EXPECT_TO_SUPPLY: {
        S.WILL_SUPPLY: 20, S.COPY_COMPLETED: 65, S.UNFILLED: 10, S.RETRY_POSSIBLE: 3,
        S.CANCELLED: 2,
    },
    S.WILL_SUPPLY: {S.COPY_COMPLETED: 95, S.UNFILLED: 4, S.CANCELLED: 1},
}  # fmt: skip
_LEND_COMMON: _W = {
    S.REQUEST_RECEIVED: {
        S.EXPECT_TO_SUPPLY: 30, S.PULLING: 40, S.WILL_SUPPLY: 5, S.RETRY_POSSIBLE: 4,
        S.UNFILLED: 18, S.CANCELLED: 3,
    },
    S.EXPECT_TO_SUPPLY: {
        S.PULLING: 80, S.WILL_SUPPLY: 5, S.RETRY_POSSIBLE: 3, S.UNFILLED: 10, S.CANCELLED: 2,
    },
    S.PULLING: {S.WILL_SUPPLY: 80, S.RETRY_POSSIBLE: 3, S.UNFILLED: 15, S.CANCELLED: 2},
    # the borrower sends a Retry on our conditions, or gives up and cancels
    S.RETRY_POSSIBLE: {S.REQUEST_RECEIVED: 35, S.CANCELLED: 65},
}  # fmt: skip
_LEND_LOAN: _W = {
    **_LEND_COMMON,
    S.WILL_SUPPLY: {S.SHIPPED: 97, S.UNFILLED: 2, S.CANCELLED: 1},
    S.SHIPPED: {S.LOANED: 95, S.LOAN_COMPLETED: 3, S.COMPLETED_WITHOUT_RETURN: 2},
    S.LOANED: {S.LOAN_COMPLETED: 85, S.OVERDUE: 10, S.RECALLED: 3, S.COMPLETED_WITHOUT_RETURN: 2},
    S.OVERDUE: {S.LOAN_COMPLETED: 75, S.RECALLED: 15, S.COMPLETED_WITHOUT_RETURN: 10},
    S.RECALLED: {S.LOAN_COMPLETED: 80, S.OVERDUE: 15, S.COMPLETED_WITHOUT_RETURN: 5},
}  # fmt: skip
_LEND_COPY: _W = {
    **_LEND_COMMON,
    S.WILL_SUPPLY: {S.COPY_COMPLETED: 97, S.UNFILLED: 2, S.CANCELLED: 1},
}

# Mean days a request spends before entering each status (exponentially distributed).
_MEAN_DAYS: dict[S, float] = {
    S.NEW: 0.3, S.VERIFYING: 0.2, S.SOURCING: 0.5, S.REQUEST_RECEIVED: 0.3,
    S.EXPECT_TO_SUPPLY: 1.0, S.WILL_SUPPLY: 2.0, S.PULLING: 1.0, S.SHIPPED: 1.5, S.LOANED: 5.0,
    S.RECEIVED: 4.0, S.CHECKED_OUT: 1.0, S.RETURNED: 25.0, S.LOAN_COMPLETED: 7.0,
    S.OVERDUE: 30.0, S.RECALLED: 10.0, S.COPY_COMPLETED: 3.0, S.UNFILLED: 2.0,
    S.RETRY_POSSIBLE: 2.0, S.CANCELLED: 3.0, S.COMPLETED_WITHOUT_RETURN: 40.0,
}  # fmt: skip

# Steps a lender reports to us (borrowing) or a borrower reports to us (lending): the actor of
# the event is then the partner's agency id rather than one of our staff.
_BY_PARTNER_BORROWING = frozenset(
    {S.REQUEST_RECEIVED, S.EXPECT_TO_SUPPLY, S.WILL_SUPPLY, S.LOANED, S.COPY_COMPLETED,
     S.UNFILLED, S.RETRY_POSSIBLE, S.LOAN_COMPLETED}
)  # fmt: skip
_ISO_STATUSES = frozenset(
    {S.REQUEST_RECEIVED, S.EXPECT_TO_SUPPLY, S.WILL_SUPPLY, S.LOANED, S.OVERDUE, S.RECALLED,
     S.RETRY_POSSIBLE, S.UNFILLED, S.COPY_COMPLETED, S.LOAN_COMPLETED,
     S.COMPLETED_WITHOUT_RETURN, S.CANCELLED}
)  # fmt: skip
_MAX_LENDERS = 5
_STALL_WINDOW_S = 120 * 86400  # requests younger than this may be stuck at a status
_POOL = 1500  # walks per (direction, service type)

# Step kinds, as bit flags, so the per-request loop tests integers instead of enums.
_K_SOURCING = 1  # borrowing: back to choosing a lender
_K_ASKED = 2  # borrowing: a (new) lender received the request
_K_LENDER_SAYS = 4  # borrowing: an ISO 18626 status from the lender (the rota outcome)
_K_LOAN_START = 8  # the item left the lender's shelf (borrowing Loaned, lending Shipped)
_K_OVERDUE = 16


@dataclass(frozen=True)
class _Path:
    """One full walk through the workflow, precomputed for speed.

    ``offsets`` are seconds after arrival at an average pace; each request scales them by its
    own pace and keeps only the steps that have happened by ``now``.
    """

    sources: tuple[str | None, ...]
    targets: tuple[str, ...]
    reasons: tuple[tuple[str, ...] | None, ...]
    by_partner: tuple[bool, ...]
    kinds: tuple[int, ...]
    offsets: tuple[int, ...]

    def cut(self, keep: int) -> _Path:
        return _Path(
            self.sources[:keep], self.targets[:keep], self.reasons[:keep],
            self.by_partner[:keep], self.kinds[:keep], self.offsets[:keep],
        )  # fmt: skip


def _pick(rng: random.Random, weights: dict[S, float]) -> S:
    targets = list(weights)
    return rng.choices(targets, weights=[weights[t] for t in targets])[0]


def _walk(rng: random.Random, direction: D, table: _W) -> _Path:
    """One full path from the initial status to a final one, legal by ``workflow``."""
    status = workflow.INITIAL[direction]
    lending = direction is D.LENDING
    sources: list[str | None] = [None]
    targets = [status.value]
    reasons: list[tuple[str, ...] | None] = [("Request created",)]
    by_partner = [lending]  # a lending request arrives as the borrower's ISO 18626 message
    kinds = [0]
    offsets = [0]
    lenders = 1 if lending else 0
    t = 0
    while not workflow.is_terminal(direction, status):
        weights = table[status]
        if not lending and status in (S.UNFILLED, S.RETRY_POSSIBLE) and lenders >= _MAX_LENDERS:
            weights = {S.CANCELLED: 1}
        target = _pick(rng, weights)
        if target is S.REQUEST_RECEIVED:
            lenders += 1
        reason: tuple[str, ...] | None = None
        if target in workflow.REASON_REQUIRED:
            reason = _REASONS[(direction, target)]
            if not lending and target is S.CANCELLED and lenders >= _MAX_LENDERS:
                reason = (_EXHAUSTED,)
        workflow.check_transition(direction, status, target, reason[0] if reason else None)
        kind = 0
        if lending:
            partner = target in (S.CANCELLED, S.LOANED, S.REQUEST_RECEIVED)
            kind |= _K_LOAN_START if target is S.SHIPPED else 0
        else:
            partner = target is not S.CANCELLED and (
                target in _BY_PARTNER_BORROWING
                or target is S.RECALLED
                or (target is S.OVERDUE and status is S.LOANED)
            )
            kind |= _K_SOURCING if target is S.SOURCING else 0
            kind |= _K_ASKED if target is S.REQUEST_RECEIVED else 0
            kind |= _K_LENDER_SAYS if target in _ISO_STATUSES and target is not S.CANCELLED else 0
            kind |= _K_LOAN_START if target is S.LOANED else 0
        kind |= _K_OVERDUE if target is S.OVERDUE else 0
        t += max(60, int(rng.expovariate(1.0) * _MEAN_DAYS[target] * 86400))
        sources.append(status.value)
        targets.append(target.value)
        reasons.append(reason)
        by_partner.append(partner)
        kinds.append(kind)
        offsets.append(t)
        status = target
    return _Path(
        tuple(sources), tuple(targets), tuple(reasons), tuple(by_partner), tuple(kinds),
        tuple(offsets),
    )  # fmt: skip


_Pools = dict[tuple[D, ServiceType], list[_Path]]


def _pools(seed: int) -> _Pools:
    rng = random.Random(f"{seed}:walks")
    tables = {
        (D.BORROWING, ServiceType.LOAN): _BORROW_LOAN,
        (D.BORROWING, ServiceType.COPY): _BORROW_COPY,
        (D.LENDING, ServiceType.LOAN): _LEND_LOAN,
        (D.LENDING, ServiceType.COPY): _LEND_COPY,
    }
    return {key: [_walk(rng, key[0], t) for _ in range(_POOL)] for key, t in tables.items()}


def _forced(pools: _Pools, total: int) -> dict[int, tuple[D, ServiceType, _Path]]:
    """Requests cut at a chosen status, so that every status of both directions appears.

    They sit near the end (recent), spaced out, so a small sandbox shows every status too.
    """
    wanted = [(d, s) for d in Direction for s in workflow.STATUSES[d]]
    if total < 2 * len(wanted):
        return {}
    # within the last ~60 days of arrivals: an open request is a recent one
    recent = int(total * 60 / 730) // len(wanted)
    stride = max(1, min(total // (len(wanted) * 2), 97, recent))
    start = total - stride * len(wanted) - 1
    forced: dict[int, tuple[D, ServiceType, _Path]] = {}
    for k, (direction, status) in enumerate(wanted):
        found = None
        for service in (ServiceType.LOAN, ServiceType.COPY):
            for path in pools[(direction, service)]:
                if status.value in path.targets:
                    found = (direction, service, path.cut(path.targets.index(status.value) + 1))
                    break
            if found:
                break
        if found is None:  # pragma: no cover - the pools are large enough for every status
            raise RuntimeError(f"No demo path reaches {direction.value} {status.value}")
        forced[start + k * stride] = found
    return forced


# --------------------------------------------------------------------------------------------
# Identifiers
# --------------------------------------------------------------------------------------------


def isbn13_check(first12: str) -> str:
    """The check digit of an ISBN-13 from its first 12 digits."""
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(first12))
    return str((10 - total % 10) % 10)


def isbn10_check(first9: str) -> str:
    """The check character of an ISBN-10 from its first 9 digits (``X`` for 10)."""
    total = sum(int(c) * (10 - i) for i, c in enumerate(first9))
    check = (11 - total % 11) % 11
    return "X" if check == 10 else str(check)


def issn_check(first7: str) -> str:
    """The check character of an ISSN from its first 7 digits."""
    total = sum(int(c) * (8 - i) for i, c in enumerate(first7))
    check = (11 - total % 11) % 11
    return "X" if check == 10 else str(check)


def _journal_issn(title: str) -> str:
    digits = f"{zlib.crc32(title.encode()) % 10_000_000:07d}"
    return digits + issn_check(digits)


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and (c.isalnum() or c in ".-"))


# --------------------------------------------------------------------------------------------
# Value encoders: SQLite takes the text SQLAlchemy would store; PostgreSQL takes objects.
# --------------------------------------------------------------------------------------------

_EPOCH = date(1970, 1, 1)


class _Encoders:
    """Turn Unix seconds, day numbers and Decimals into what the driver should bind."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self._days: dict[int, Any] = {}
        # SQLAlchemy's SQLite DateTime storage format is "YYYY-MM-DD HH:MM:SS.ffffff".
        self._clock = (
            [f" {h:02d}:{m:02d}:{s:02d}.000000" for h in range(24) for m in range(60)
             for s in range(60)]
            if self.sqlite else []
        )  # fmt: skip

    def day(self, day_number: int) -> Any:
        """Day number (days since 1970-01-01) -> stored date."""
        value = self._days.get(day_number)
        if value is None:
            d = _EPOCH + timedelta(days=day_number)
            value = d.isoformat() if self.sqlite else d
            self._days[day_number] = value
        return value

    def ts(self, seconds: int) -> Any:
        """Unix seconds -> stored UTC timestamp."""
        if self.sqlite:
            d, rest = divmod(seconds, 86400)
            day = self._days.get(d)
            if day is None:
                day = self.day(d)
            return day + self._clock[rest]
        return datetime.fromtimestamp(seconds, UTC)

    def money(self, value: Decimal | None) -> Any:
        """A Decimal as the driver takes it."""
        if value is None:
            return None
        return str(value) if self.sqlite else value


# --------------------------------------------------------------------------------------------
# The loader: one transaction, raw executemany
# --------------------------------------------------------------------------------------------

_REQUEST_COLUMNS = (
    "id", "direction", "service_type", "status", "is_open", "title", "author", "edition",
    "publisher", "place_of_publication", "year", "isbn", "issn", "oclc_number", "lccn", "doi",
    "article_title", "article_author", "volume", "issue", "pages", "patron_id", "partner_id",
    "party_name", "partner_request_id", "rota_position", "needed_by", "max_cost",
    "max_cost_currency", "due_date", "created_at", "updated_at", "version",
)  # fmt: skip
# Events, notes and rota entries take their ids from the database, in the order written.
_EVENT_COLUMNS = ("request_id", "actor", "at", "from_status", "to_status", "reason")
_NOTE_COLUMNS = ("request_id", "author", "at", "text")
_ROTA_COLUMNS = ("request_id", "position", "partner_id", "outcome", "created_at")
_PATRON_COLUMNS = (
    "id",
    "barcode",
    "name",
    "email",
    "category",
    "department",
    "active",
    "created_at",
)
_PARTNER_COLUMNS = (
    "id", "agency_id_type", "agency_id_value", "name", "country", "currency", "endpoint_url",
    "email", "account_id", "security_code", "loan_charge", "copy_charge", "loan_period_days",
    "policies", "consortia", "active", "created_at", "updated_at", "version",
)  # fmt: skip


class _Loader:
    """Runs SQL on one DBAPI connection inside one explicit transaction."""

    def __init__(self, engine: Engine) -> None:
        self.dialect = engine.dialect.name
        self.sqlite = self.dialect == "sqlite"
        self.placeholder = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._pool_conn = engine.raw_connection()
        driver = self._pool_conn.driver_connection
        assert driver is not None
        self.dbapi: Any = driver
        if self.sqlite:
            self._saved_isolation = self.dbapi.isolation_level
            self.dbapi.isolation_level = None  # we issue BEGIN/COMMIT ourselves
        self.cursor = self.dbapi.cursor()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.cursor.execute(sql, params)
        return self.cursor

    def scalar(self, sql: str) -> Any:
        row = self.execute(sql).fetchone()
        return None if row is None else row[0]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if not self.sqlite and hasattr(self.cursor, "copy"):
            # psycopg 3: COPY is several times faster than executemany on PostgreSQL
            with self.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join([self.placeholder] * len(columns))
        self.cursor.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
        )

    def begin(self) -> None:
        if self.sqlite:
            self.execute("BEGIN")

    def commit(self) -> None:
        self.dbapi.commit() if not self.sqlite else self.execute("COMMIT")

    def rollback(self) -> None:
        if self.sqlite:
            if self.dbapi.in_transaction:
                self.execute("ROLLBACK")
        else:
            self.dbapi.rollback()

    def close(self) -> None:
        self.cursor.close()
        if self.sqlite:
            self.dbapi.isolation_level = self._saved_isolation
        self._pool_conn.close()


def _count_rows(loader: _Loader) -> int:
    total = 0
    for table in ("request", "patron", "partner", "event", "note", "rota_entry"):
        total += int(loader.scalar(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1) t"))
    return total


def _has_marker(loader: _Loader) -> bool:
    p = loader.placeholder
    loader.execute(
        f"SELECT 1 FROM partner WHERE agency_id_type = {p} AND agency_id_value = {p}",
        (DEMO_MARKER_TYPE, DEMO_MARKER_VALUE),
    )
    return loader.cursor.fetchone() is not None


def is_demo_database(engine: Engine) -> bool:
    """True when the (migrated) database carries the demo marker partner."""
    loader = _Loader(engine)
    try:
        return _has_marker(loader)
    finally:
        loader.rollback()
        loader.close()


def holds_other_data(engine: Engine) -> bool:
    """True when the database has rows but no demo marker: a live database, not a sandbox."""
    loader = _Loader(engine)
    try:
        return _count_rows(loader) > 0 and not _has_marker(loader)
    finally:
        loader.rollback()
        loader.close()


# --------------------------------------------------------------------------------------------
# The builder
# --------------------------------------------------------------------------------------------

PARALLEL_FROM = 50_000  # below this, making the rows in worker processes is not worth it


def build_demo(
    engine: Engine,
    *,
    requests: int = 3000,
    seed: int = 1,
    now: datetime | None = None,
    progress: Progress | None = None,
    force: bool = False,
    workers: int | None = None,
) -> DemoSummary:
    """Create or refresh the demo sandbox in ``engine``'s (migrated) database.

    Everything in the demo tables is deleted first, so running it twice never duplicates.
    The same ``seed`` and ``now`` give the same data (whatever the number of workers).

    Args:
        engine: a database already upgraded to the newest schema.
        requests: how many requests to make (both directions together).
        seed: the random seed.
        now: the moment the data leads up to (default: the current time).
        progress: called as ``progress(stage, done, total)`` while building.
        force: wipe even a database that has data but is not a demo sandbox.
        workers: processes that make rows while this one writes them; default: one per CPU
            for large sandboxes, none for small ones.

    Raises:
        NotADemoDatabase: the database holds data not made by ``build_demo`` and not ``force``.
    """
    if requests < 0:
        raise ValueError("The number of requests cannot be negative.")
    started = time.perf_counter()
    report = progress or (lambda _stage, _done, _total: None)
    now_s = int(as_utc(now or utcnow()).timestamp())
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if requests >= PARALLEL_FROM else 0
    loader = _Loader(engine)
    summary = DemoSummary()
    try:
        if loader.sqlite:
            # Outside any transaction: SQLite ignores these inside one.
            loader.execute("PRAGMA foreign_keys=OFF")
            loader.execute("PRAGMA synchronous=OFF")
            loader.execute("PRAGMA cache_size=-1048576")  # 1 GiB while building
            loader.execute("PRAGMA temp_store=MEMORY")
        loader.begin()
        if not force and _count_rows(loader) > 0 and not _has_marker(loader):
            raise NotADemoDatabase(
                "This database holds partners, patrons or requests that the demo did not "
                "make; refusing to wipe it. Use a separate database for the demo."
            )
        report("wiping", 0, 1)
        saved = _drop_for_bulk(loader)
        _wipe(loader)
        report("wiping", 1, 1)
        _load(loader, summary, seed=seed, requests=requests, now_s=now_s, workers=workers,
              report=report)  # fmt: skip
        report("indexing", 0, 1)
        for sql in saved:  # the very SQL the migration created them with
            loader.execute(sql)
        report("indexing", 1, 1)
        if loader.sqlite:
            report("text index", 0, 1)
            loader.execute("INSERT INTO request_fts(request_fts) VALUES('rebuild')")
            report("text index", 1, 1)
        else:
            _reset_sequences(loader)
        report("analyzing", 0, 1)
        if loader.sqlite:
            loader.execute("PRAGMA analysis_limit=2000")  # sampled statistics: fast and enough
        loader.execute("ANALYZE")
        loader.commit()
        report("analyzing", 1, 1)
    except BaseException:
        loader.rollback()
        raise
    finally:
        if loader.sqlite:
            loader.execute("PRAGMA foreign_keys=ON")
            loader.execute("PRAGMA synchronous=NORMAL")
            loader.execute("PRAGMA cache_size=-65536")
            loader.execute("PRAGMA temp_store=DEFAULT")
            loader.execute("PRAGMA analysis_limit=0")
        loader.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _wipe(loader: _Loader) -> None:
    if loader.sqlite:
        for table in DEMO_TABLES:
            loader.execute(f"DELETE FROM {table}")
    else:
        # CASCADE also clears rows of later tables that point at requests or partners.
        loader.execute(f"TRUNCATE {', '.join(DEMO_TABLES)} RESTART IDENTITY CASCADE")


def _drop_for_bulk(loader: _Loader) -> list[str]:
    """Drop the secondary indexes of the big tables (and, on SQLite, the FTS triggers).

    Returns the SQL that created them, exactly as the database stored it when the migration
    ran, to be run again after the load. Indexes behind constraints (keys, unique) stay.
    """
    if not loader.sqlite:
        pg_rows = loader.execute(
            "SELECT 'index', indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = current_schema() "
            "AND tablename IN ('request', 'event', 'note', 'rota_entry') "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint) ORDER BY indexname"
        ).fetchall()
        for _kind, name, _sql in pg_rows:
            loader.execute(f'DROP INDEX "{name}"')
        return [sql for _kind, _name, sql in pg_rows]
    rows = loader.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND ("
        "(type = 'trigger' AND tbl_name = 'request') OR "
        "(type = 'index' AND tbl_name IN ('request', 'event', 'note', 'rota_entry')))"
        " ORDER BY type, name"
    ).fetchall()
    for kind, name, _sql in rows:
        loader.execute(f'DROP {kind.upper()} "{name}"')
    return [sql for _kind, _name, sql in rows]


def _reset_sequences(loader: _Loader) -> None:
    for table in DEMO_TABLES:
        loader.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
        )


def _load(
    loader: _Loader,
    summary: DemoSummary,
    *,
    seed: int,
    requests: int,
    now_s: int,
    workers: int,
    report: Progress,
) -> None:
    enc = _Encoders(loader.dialect)
    rng = random.Random(f"{seed}:directory")

    partners = _partner_rows(now_s)
    loader.insert(
        "partner",
        _PARTNER_COLUMNS,
        [
            tuple(
                enc.money(p[c]) if c in ("loan_charge", "copy_charge")
                else enc.ts(p["created_at"]) if c in ("created_at", "updated_at")
                else 1 if c == "version"
                else p[c]
                for c in _PARTNER_COLUMNS
            )
            for p in partners
        ],
    )  # fmt: skip
    libraries = [p for p in partners if p["agency_id_type"] != DEMO_MARKER_TYPE]
    summary.partners = len(libraries)
    summary.countries = len({p["country"] for p in libraries})
    summary.currencies = len({p["currency"] for p in libraries})
    report("partners", len(libraries), len(libraries))

    n_patrons = max(300, requests // 10)
    patron_rows = []
    patron_names: list[str] = []
    for i in range(1, n_patrons + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        name = f"{first} {last}"
        category = rng.choice(_CATEGORIES)
        domain = "example.edu" if category in ("faculty", "staff") else "students.example.edu"
        email = f"{_ascii(first).lower()}.{_ascii(last).lower()}{i}@{domain}"
        created = now_s - 900 * 86400 + rng.randrange(700 * 86400)
        patron_rows.append(
            (i, f"2{31000 + i % 7:05d}{i:08d}", name, email, category,
             rng.choice(_DEPARTMENTS), rng.random() > 0.02, enc.ts(created))
        )  # fmt: skip
        patron_names.append(name)
    for start in range(0, len(patron_rows), BATCH):
        loader.insert("patron", _PATRON_COLUMNS, patron_rows[start : start + BATCH])
    summary.patrons = n_patrons
    report("patrons", n_patrons, n_patrons)

    lenders = tuple(
        (p["id"], f"{p['agency_id_type']}:{p['agency_id_value']}", p["name"],
         p["loan_period_days"], p["agency_id_value"])
        for p in libraries if p["active"]
    )  # fmt: skip
    ctx = _Context(seed, now_s, requests, lenders, tuple(patron_names), loader.dialect)
    by_status: Counter[tuple[str, str]] = Counter()
    done = 0
    report("requests", 0, requests)
    for batch in _batches(ctx, workers):
        loader.insert("request", _REQUEST_COLUMNS, batch.requests)
        loader.insert("event", _EVENT_COLUMNS, batch.events)
        loader.insert("note", _NOTE_COLUMNS, batch.notes)
        loader.insert("rota_entry", _ROTA_COLUMNS, batch.rota)
        done += len(batch.requests)
        summary.events += len(batch.events)
        summary.notes += len(batch.notes)
        summary.rota_entries += len(batch.rota)
        by_status.update(batch.by_status)
        report("requests", done, requests)
    summary.requests = done
    summary.by_status = dict(by_status)


# --------------------------------------------------------------------------------------------
# Making requests, one chunk at a time (in this process or in worker processes)
# --------------------------------------------------------------------------------------------

# (partner id, agency id as "TYPE:VALUE", name, loan period in days, agency id value)
_Lender = tuple[int, str, str, int, str]


@dataclass(frozen=True)
class _Context:
    """Everything a chunk needs; picklable, so worker processes can have it."""

    seed: int
    now_s: int
    total: int
    lenders: tuple[_Lender, ...]
    patron_names: tuple[str, ...]
    dialect: str


@dataclass
class _Batch:
    requests: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    notes: list[tuple[Any, ...]] = field(default_factory=list)
    rota: list[tuple[Any, ...]] = field(default_factory=list)
    by_status: Counter[tuple[str, str]] = field(default_factory=Counter)


def _batches(ctx: _Context, workers: int) -> Iterator[_Batch]:
    chunks = range((ctx.total + BATCH - 1) // BATCH)
    if workers <= 0 or len(chunks) < 2:
        maker = _ChunkMaker(ctx)
        for k in chunks:
            yield maker.chunk(k)
        return
    # Chunks are independent (each has its own random stream), so workers can make them in any
    # order; we write them in order, keeping only a few in flight to bound memory.
    # fork where there is one: the workers need nothing but this module and the context, and
    # spawn would re-run the caller's main module.
    methods = multiprocessing.get_all_start_methods()
    mp = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(workers, mp_context=mp, initializer=_init_worker,
                             initargs=(ctx,)) as pool:  # fmt: skip
        pending: deque[Future[_Batch]] = deque()
        todo = iter(chunks)
        for k in todo:
            pending.append(pool.submit(_worker_chunk, k))
            if len(pending) >= 2 * workers:
                break
        while pending:
            batch = pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(_worker_chunk, nxt))
            yield batch


_WORKER: _ChunkMaker | None = None


def _init_worker(ctx: _Context) -> None:
    global _WORKER
    _WORKER = _ChunkMaker(ctx)


def _worker_chunk(k: int) -> _Batch:
    assert _WORKER is not None
    return _WORKER.chunk(k)


class _ChunkMaker:
    """Makes the rows of requests ``k*BATCH .. (k+1)*BATCH-1`` with their histories."""

    SPAN_S = 730 * 86400  # two years of history

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx
        self.enc = _Encoders(ctx.dialect)
        self.pools = _pools(ctx.seed)
        self.forced = _forced(self.pools, ctx.total)
        self.journals = [(t, abbr, pre, _journal_issn(t)) for t, abbr, pre in _JOURNALS]
        self.rng = random.Random()

    def chunk(self, k: int) -> _Batch:
        self.rng.seed(f"{self.ctx.seed}:requests:{k}")
        batch = _Batch()
        for index in range(k * BATCH, min(self.ctx.total, (k + 1) * BATCH)):
            self._one(index, batch)
        return batch

    def _citation(self, service: ServiceType, created_year: int) -> tuple[Any, ...]:
        """title, author, edition, publisher, place, year, isbn, issn, oclc, lccn, doi,
        article title, article author, volume, issue, pages."""
        r = self.rng.random
        topic = _TOPICS[int(r() * len(_TOPICS))]
        if service is ServiceType.LOAN:
            title = _FORMS[int(r() * len(_FORMS))].format(t=topic)
            publisher, place, prefix = _PUBLISHERS[int(r() * len(_PUBLISHERS))]
            year = created_year - int(r() ** 2 * 70)
            isbn = None
            if year >= 1972 and r() < 0.93:
                body = prefix + f"{int(r() * 10**9):09d}"[: 9 - len(prefix)]
                if year < 2007 or r() < 0.5:
                    # from the ISBN-10 era: the ISBN-13 derived from the ISBN-10
                    isbn10 = body + isbn10_check(body)
                    first12 = "978" + isbn10[:9]
                else:
                    first12 = "978" + body
                isbn = first12 + isbn13_check(first12)
            lccn = None
            if r() < 0.3:
                lccn = (f"{year}" if year >= 2001 else f"{year % 100:02d}") + (
                    f"{int(r() * 999999):06d}"
                )
            author = f"{_LAST[int(r() * len(_LAST))]}, {_FIRST[int(r() * len(_FIRST))]}"
            oclc = str(int(r() * 1_500_000_000) + 1000) if r() < 0.6 else None
            edition = _EDITIONS[int(r() * len(_EDITIONS))]
            return (title, author, edition, publisher, place, str(year), isbn, None, oclc,
                    lccn, None, None, None, None, None, None)  # fmt: skip
        journal, abbr, doi_prefix, issn = self.journals[int(r() * len(self.journals))]
        year = created_year - int(r() ** 2 * 40)
        volume = max(1, year - 1900 + len(abbr))
        issue = 1 + int(r() * 6)
        first_page = 1 + int(r() * 900)
        aspect = _ASPECTS[int(r() * len(_ASPECTS))]
        article = _ARTICLE_FORMS[int(r() * len(_ARTICLE_FORMS))].format(a=aspect, t=topic.lower())
        doi = None
        if year >= 1998 and r() < 0.7:
            doi = f"{doi_prefix}/{abbr}.{year}.{issue:02d}.{first_page:03d}"
        author = f"{_LAST[int(r() * len(_LAST))]}, {_FIRST[int(r() * len(_FIRST))][0]}."
        return (journal, None, None, None, None, str(year), None, issn, None, None, doi,
                article[0].upper() + article[1:], author, str(volume), str(issue),
                f"{first_page}-{first_page + 4 + int(r() * 30)}")  # fmt: skip

    def _one(self, index: int, batch: _Batch) -> None:
        ctx, rng, enc = self.ctx, self.rng, self.enc
        r = rng.random
        ts = enc.ts
        request_id = index + 1
        step_s = self.SPAN_S / max(1, ctx.total)
        created = ctx.now_s - self.SPAN_S + int((index + r() * 0.9) * step_s)
        age = ctx.now_s - created

        forced = self.forced.get(index)
        pace = 0.5 + r()
        if forced is not None:
            direction, service, path = forced
            offsets = [int(o * pace) for o in path.offsets]
            if offsets[-1] >= age:  # squeeze the history into the time it has had
                scale = age * 0.9 / offsets[-1]
                offsets = [int(o * scale) + i for i, o in enumerate(offsets)]
            keep = len(offsets)
        else:
            direction = D.BORROWING if r() < 0.6 else D.LENDING
            service = ServiceType.COPY if r() < 0.4 else ServiceType.LOAN
            pool = self.pools[(direction, service)]
            path = pool[int(r() * len(pool))]
            offsets = [int(o * pace) for o in path.offsets]
            # only what has happened by now; a few recent requests stall at some status (older
            # ones would have been chased or cancelled by staff long ago)
            keep = bisect.bisect_left(offsets, age)
            if r() < 0.03 and age < _STALL_WINDOW_S:
                keep = min(keep, 1 + int(r() * len(offsets)))
        lending = direction is D.LENDING
        final = path.targets[keep - 1]
        last_at = created + offsets[keep - 1]

        lenders = ctx.lenders
        requester = lenders[int(r() * len(lenders))] if lending else None
        patron_id = None if lending else 1 + int(r() * len(ctx.patron_names))
        partner_actor = requester[1] if requester else ""
        tried: list[_Lender] = []
        rota: list[list[Any]] = []
        loan_start = overdue_at = None
        staff_i = int(r() * len(_STAFF))
        sourced_at = created
        sources, targets, reasons, by_partner, kinds = (
            path.sources,
            path.targets,
            path.reasons,
            path.by_partner,
            path.kinds,
        )
        events = batch.events
        for i in range(keep):
            at = created + offsets[i]
            kind = kinds[i]
            if kind:
                if kind & _K_SOURCING:
                    sourced_at = at
                if kind & _K_ASKED:
                    lender = self._next_lender(tried)
                    tried.append(lender)
                    rota.append([len(tried), lender[0], None, sourced_at])
                    partner_actor = lender[1]
                if kind & _K_LENDER_SAYS and rota:
                    rota[-1][2] = targets[i]
                if kind & _K_LOAN_START and loan_start is None:
                    loan_start = at
                if kind & _K_OVERDUE:
                    overdue_at = at
            if by_partner[i] and partner_actor:
                actor = partner_actor
            else:
                actor = _STAFF[staff_i if i % 3 else (staff_i + i) % len(_STAFF)]
            why = reasons[i]
            events.append(
                (request_id, actor, ts(at), sources[i], targets[i],
                 why[int(r() * len(why))] if why else None)
            )  # fmt: skip

        if final == "Sourcing" and tried and len(tried) < _MAX_LENDERS:
            lender = self._next_lender(tried)  # the next lender, not asked yet
            rota.append([len(tried) + 1, lender[0], None, last_at])
        for position, partner_id, outcome, at in rota:
            batch.rota.append((request_id, position, partner_id, outcome, ts(at)))

        if requester is not None:
            partner: _Lender | None = requester
            party = requester[2]
            period = 28 + 7  # our loan period, plus the time in the post
        else:
            partner = tried[-1] if tried else None
            party = ctx.patron_names[patron_id - 1]  # type: ignore[operator]
            period = partner[3] if partner else 28
        due = None
        if loan_start is not None and service is ServiceType.LOAN:
            due_day = loan_start // 86400 + period
            if overdue_at is not None:
                due_day = min(due_day, overdue_at // 86400 - 1)
            due = enc.day(due_day)

        created_year = (_EPOCH + timedelta(days=created // 86400)).year
        cit = self._citation(service, created_year)
        needed_by = enc.day(created // 86400 + 14 + int(r() * 100)) if r() < 0.4 else None
        max_cost = max_cost_currency = None
        if not lending and r() < 0.35:
            max_cost = enc.money(_MAX_COSTS[int(r() * len(_MAX_COSTS))])
            max_cost_currency = "USD"
        partner_request_id = None
        if requester is not None:
            partner_request_id = f"{requester[4]}-{created_year % 100:02d}{request_id:07d}"
        elif tried:
            partner_request_id = f"{tried[-1][4]}:{request_id + 40000}"

        if r() < 0.08:
            note_at = min(created + int(r() * (last_at - created + 3600)), ctx.now_s - 1)
            batch.notes.append(
                (request_id, _STAFF[int(r() * len(_STAFF))], ts(note_at),
                 _NOTES[int(r() * len(_NOTES))])
            )  # fmt: skip

        is_open = not workflow.is_terminal(direction, final)
        batch.requests.append(
            (request_id, direction.value, service.value, final, is_open, *cit, patron_id,
             partner[0] if partner else None, party, partner_request_id,
             len(tried), needed_by, max_cost, max_cost_currency, due, ts(created),
             ts(last_at), keep)
        )  # fmt: skip
        batch.by_status[(direction.value, final)] += 1

    def _next_lender(self, tried: list[_Lender]) -> _Lender:
        lenders = self.ctx.lenders
        while True:
            choice = lenders[int(self.rng.random() * len(lenders))]
            if choice not in tried:
                return choice


_MAX_COSTS = tuple(Decimal(v) for v in ("15.00", "25.00", "40.00", "50.00", "75.00"))
