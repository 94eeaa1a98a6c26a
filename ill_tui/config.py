"""Settings: where the database lives, who we are, our currency and locale.

Nothing here is read at import time; ``Settings.from_env`` is called by the composition root
(``cli.py``) and the result passed down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "ill-tui"
ENV_DATABASE_URL = "ILL_TUI_DATABASE_URL"


def default_data_dir() -> Path:
    """The per-user data directory (platformdirs), e.g. ``~/.local/share/ill-tui``."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def sqlite_url(path: Path | str) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def normalise_database_url(value: str) -> str:
    """Accept a URL or a plain file path; return a SQLAlchemy URL.

    ``postgresql://`` is taken to mean the psycopg 3 driver, the one we ship.
    """
    value = value.strip()
    if "://" not in value:
        return sqlite_url(value)
    if value.startswith("postgresql://") or value.startswith("postgres://"):
        return "postgresql+psycopg://" + value.split("://", 1)[1]
    return value


@dataclass(frozen=True)
class Settings:
    """What one running ill-tui needs to know about its surroundings."""

    database_url: str
    agency_id_type: str = "ISIL"
    agency_id_value: str = "US-XLOCAL"
    library_name: str = "Our Library"
    home_currency: str = "USD"
    locale: str = "en_US"
    actor: str = "staff"
    # where partners reach our ISO 18626 endpoint (sent in requestingAgencyInfo so a partner,
    # or the simulator, knows where to answer); None when we do not run `ill-tui serve`
    endpoint_url: str | None = None
    # a borrowing request with no answer from its lender after this many days moves on to the
    # next lender in its rota
    rota_timeout_days: int = 7

    @classmethod
    def from_env(
        cls, database_url: str | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from an explicit URL, then ``ILL_TUI_*`` variables, then defaults."""
        env = os.environ if env is None else env
        url = database_url or env.get(ENV_DATABASE_URL)
        if not url:
            url = sqlite_url(default_data_dir() / "ill-tui.db")
        return cls(
            database_url=normalise_database_url(url),
            agency_id_type=env.get("ILL_TUI_AGENCY_ID_TYPE", cls.agency_id_type),
            agency_id_value=env.get("ILL_TUI_AGENCY_ID", cls.agency_id_value),
            library_name=env.get("ILL_TUI_LIBRARY_NAME", cls.library_name),
            home_currency=env.get("ILL_TUI_CURRENCY", cls.home_currency).upper(),
            locale=env.get("ILL_TUI_LOCALE", cls.locale),
            actor=env.get("ILL_TUI_ACTOR") or env.get("USER") or cls.actor,
            endpoint_url=env.get("ILL_TUI_ENDPOINT_URL") or None,
            rota_timeout_days=_positive_int(
                env.get("ILL_TUI_ROTA_TIMEOUT_DAYS"),
                cls.rota_timeout_days,
                "ILL_TUI_ROTA_TIMEOUT_DAYS",
            ),
        )


def _positive_int(value: str | None, default: int, name: str) -> int:
    """Read a positive whole number from the environment, or say clearly what is wrong."""
    if value is None or not value.strip():
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of days, not {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be at least 1, not {number}")
    return number
