"""ISO 18626 message log and outbox; citation verification, holdings, duplicates.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from ill_tui.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

REQUEST_COLUMNS = (
    ("pmid", sa.String(20)),
    ("exchange_id", sa.String(100)),
    ("sent_at", UTCDateTime()),
    ("verification", sa.String(16)),
    ("verified_at", UTCDateTime()),
    ("local_holding", sa.String(500)),
    ("duplicate_of_id", sa.Integer),
)


def _ts(name: str) -> sa.Column:
    return sa.Column(name, UTCDateTime(), nullable=False)


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default) is instant on SQLite and PostgreSQL alike, even
    # with a million requests; the FTS triggers and the search view are left untouched.
    for name, type_ in REQUEST_COLUMNS:
        op.add_column("request", sa.Column(name, type_, nullable=True))
    op.create_index("ix_request_exchange", "request", ["exchange_id"])
    op.create_index("ix_request_partner_request", "request", ["partner_id", "partner_request_id"])
    op.create_table(
        "marc_record",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("request.id"), nullable=False,
                  index=True),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("record_id", sa.String(100), nullable=False),
        sa.Column("marcxml", sa.Text, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("reasons", sa.String(2000), nullable=False),
        sa.Column("accepted", sa.Boolean, nullable=False),
        _ts("created_at"),
    )  # fmt: skip
    op.create_table(
        "request_holding",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("request.id"), nullable=False,
                  index=True),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("local", sa.Boolean, nullable=False),
        sa.Column("partner_id", sa.Integer, sa.ForeignKey("partner.id")),
        sa.Column("agency", sa.String(100)),
        sa.Column("call_number", sa.String(200)),
        sa.Column("location", sa.String(200)),
        sa.Column("availability", sa.String(100)),
        _ts("created_at"),
    )  # fmt: skip
    op.create_table(
        "iso_message",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("request.id"), index=True),
        sa.Column("partner_id", sa.Integer, sa.ForeignKey("partner.id"), index=True),
        sa.Column("peer", sa.String(100), nullable=False),
        sa.Column("agency_request_id", sa.String(100)),
        sa.Column("summary", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("confirmation", sa.Text),
        sa.Column("confirmation_status", sa.String(8)),
        sa.Column("error_type", sa.String(48)),
        sa.Column("error_value", sa.String(500)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime()),
        sa.Column("last_error", sa.String(2000)),
        _ts("created_at"),
        sa.Column("sent_at", UTCDateTime()),
    )
    op.create_index(
        "ix_iso_message_outbox", "iso_message", ["direction", "state", "partner_id", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_iso_message_outbox", table_name="iso_message")
    for table in ("iso_message", "request_holding", "marc_record"):
        op.drop_table(table)
    op.drop_index("ix_request_partner_request", table_name="request")
    op.drop_index("ix_request_exchange", table_name="request")
    # SQLite (3.35+) drops a column in place when nothing else refers to it; none of these is
    # indexed any more or in the search view, so no table rebuild (and no FTS trigger loss).
    for name, _type in reversed(REQUEST_COLUMNS):
        op.drop_column("request", name)
