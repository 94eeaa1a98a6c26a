"""Initial schema: patrons, partners, requests, rota, events, notes, and the text index.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from ill_tui.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MONEY = sa.Numeric(14, 4)

# The text the queue's free-text filter searches. Kept in step with
# ill_tui.services.queue.SEARCH_COLUMNS and PG_SEARCH_VECTOR.
SEARCH_COLUMNS = (
    "title", "article_title", "author", "article_author", "isbn", "issn", "oclc_number",
    "party_name",
)  # fmt: skip
PG_SEARCH_VECTOR = (
    "to_tsvector('simple'::regconfig, "
    + " || ' ' || ".join(f"coalesce({c}, '')" for c in SEARCH_COLUMNS)
    + ")"
)


def _ts(name: str, index: bool = False) -> sa.Column:
    return sa.Column(name, UTCDateTime(), nullable=False, index=index)


def upgrade() -> None:
    op.create_table(
        "patron",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("barcode", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254)),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("department", sa.String(120)),
        sa.Column("active", sa.Boolean, nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "partner",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agency_id_type", sa.String(16), nullable=False),
        sa.Column("agency_id_value", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("endpoint_url", sa.String(500)),
        sa.Column("email", sa.String(254)),
        sa.Column("account_id", sa.String(100)),
        sa.Column("security_code", sa.String(200)),
        sa.Column("loan_charge", MONEY, nullable=False),
        sa.Column("copy_charge", MONEY, nullable=False),
        sa.Column("loan_period_days", sa.Integer, nullable=False),
        sa.Column("policies", sa.String(2000), nullable=False),
        sa.Column("consortia", sa.String(500), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.UniqueConstraint("agency_id_type", "agency_id_value", name="uq_partner_agency"),
    )
    op.create_table(
        "request",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("service_type", sa.String(8), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("is_open", sa.Boolean, nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("author", sa.String(300)),
        sa.Column("edition", sa.String(100)),
        sa.Column("publisher", sa.String(200)),
        sa.Column("place_of_publication", sa.String(200)),
        sa.Column("year", sa.String(16)),
        sa.Column("isbn", sa.String(13)),
        sa.Column("issn", sa.String(9)),
        sa.Column("oclc_number", sa.String(20)),
        sa.Column("lccn", sa.String(20)),
        sa.Column("doi", sa.String(200)),
        sa.Column("article_title", sa.String(500)),
        sa.Column("article_author", sa.String(300)),
        sa.Column("volume", sa.String(32)),
        sa.Column("issue", sa.String(32)),
        sa.Column("pages", sa.String(32)),
        sa.Column("patron_id", sa.Integer, sa.ForeignKey("patron.id"), index=True),
        sa.Column("partner_id", sa.Integer, sa.ForeignKey("partner.id"), index=True),
        sa.Column("party_name", sa.String(200), nullable=False),
        sa.Column("partner_request_id", sa.String(100)),
        sa.Column("rota_position", sa.Integer, nullable=False),
        sa.Column("needed_by", sa.Date),
        sa.Column("max_cost", MONEY),
        sa.Column("max_cost_currency", sa.String(3)),
        sa.Column("due_date", sa.Date),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_request_dir_id", "request", ["direction", "id"])
    op.create_index("ix_request_dir_open_id", "request", ["direction", "is_open", "id"])
    op.create_index("ix_request_dir_status_id", "request", ["direction", "status", "id"])
    op.create_index(
        "ix_request_dir_open_status_id", "request", ["direction", "is_open", "status", "id"]
    )
    op.create_index("ix_request_dir_title", "request", ["direction", "title", "id"])
    op.create_index("ix_request_dir_needed_by", "request", ["direction", "needed_by", "id"])
    op.create_index("ix_request_dir_party", "request", ["direction", "party_name", "id"])
    op.create_table(
        "rota_entry",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("request.id"), nullable=False,
                  index=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("partner_id", sa.Integer, sa.ForeignKey("partner.id"), nullable=False,
                  index=True),
        sa.Column("outcome", sa.String(32)),
        _ts("created_at"),
        sa.UniqueConstraint("request_id", "position", name="uq_rota_position"),
    )  # fmt: skip
    op.create_table(
        "event",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("request.id"), nullable=False,
                  index=True),
        sa.Column("actor", sa.String(100), nullable=False),
        _ts("at"),
        sa.Column("from_status", sa.String(32)),
        sa.Column("to_status", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(2000)),
    )  # fmt: skip
    op.create_table(
        "note",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("request.id"), nullable=False,
                  index=True),
        sa.Column("author", sa.String(100), nullable=False),
        _ts("at"),
        sa.Column("text", sa.String(10000), nullable=False),
    )  # fmt: skip
    create_text_index()


def _queue_tags(row: str) -> str:
    """SQL for the queue tags of ``row`` (``new``/``old``/a table): words the text index holds
    beside the citation so a text search can be narrowed to one queue inside the index.

    ``zzd<direction>`` every request; ``zzo<direction>`` open ones; ``zzs<direction><status>``.
    Kept in step with ill_tui.services.queue.queue_tag.
    """
    return (
        f"('zzd' || {row}.direction || ' ' || "
        f"CASE WHEN {row}.is_open THEN 'zzo' || {row}.direction || ' ' ELSE '' END || "
        f"'zzs' || {row}.direction || lower({row}.status))"
    )


def create_text_index() -> None:
    """SQLite: an FTS5 table over the request columns, kept by triggers. PostgreSQL: GIN.

    On SQLite the index reads its rows from the view ``request_search`` (the searchable
    columns plus the queue tags), so ``INSERT INTO request_fts(request_fts) VALUES('rebuild')``
    rebuilds it from scratch. Prefixes of 2, 3 and 4 characters are indexed: typing the first
    letters of a word or the first digits of an ISBN stays fast.
    """
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        cols = ", ".join(SEARCH_COLUMNS)
        all_cols = f"{cols}, queue_tags"
        new = ", ".join(f"new.{c}" for c in SEARCH_COLUMNS) + ", " + _queue_tags("new")
        old = ", ".join(f"old.{c}" for c in SEARCH_COLUMNS) + ", " + _queue_tags("old")
        op.execute(
            "CREATE VIEW request_search AS SELECT r.id, "
            + ", ".join(f"r.{c}" for c in SEARCH_COLUMNS)
            + f", {_queue_tags('r')} AS queue_tags FROM request r"
        )
        op.execute(
            f"CREATE VIRTUAL TABLE request_fts USING fts5({all_cols}, content='request_search', "
            "content_rowid='id', tokenize='unicode61 remove_diacritics 2', prefix='2 3 4')"
        )
        op.execute(
            "CREATE TRIGGER request_fts_ai AFTER INSERT ON request BEGIN "
            f"INSERT INTO request_fts(rowid, {all_cols}) VALUES (new.id, {new}); END"
        )
        op.execute(
            "CREATE TRIGGER request_fts_ad AFTER DELETE ON request BEGIN "
            f"INSERT INTO request_fts(request_fts, rowid, {all_cols}) "
            f"VALUES ('delete', old.id, {old}); END"
        )
        op.execute(
            f"CREATE TRIGGER request_fts_au AFTER UPDATE OF {cols}, direction, status, is_open "
            "ON request BEGIN "
            f"INSERT INTO request_fts(request_fts, rowid, {all_cols}) "
            f"VALUES ('delete', old.id, {old}); "
            f"INSERT INTO request_fts(rowid, {all_cols}) VALUES (new.id, {new}); END"
        )
    elif bind.dialect.name == "postgresql":
        op.execute(f"CREATE INDEX ix_request_search ON request USING gin (({PG_SEARCH_VECTOR}))")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for trigger in ("request_fts_ai", "request_fts_ad", "request_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS request_fts")
        op.execute("DROP VIEW IF EXISTS request_search")
    for table in ("note", "event", "rota_entry", "request", "partner", "patron"):
        op.drop_table(table)
