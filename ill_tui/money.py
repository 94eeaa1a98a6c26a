"""Money: ``Decimal`` amounts with an ISO 4217 currency, rounded to its minor units."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from babel.numbers import format_currency, get_currency_precision, list_currencies

# The database keeps amounts as NUMERIC(14, 4): at most ten digits before the point.
MAX_AMOUNT = Decimal(10) ** 10

_AMOUNT = re.compile(r"\d+(?:\.\d*)?|\.\d+")


class InvalidMoney(ValueError):
    """An amount or currency code that cannot be right."""


def check_currency(code: str) -> str:
    """Return the upper-cased ISO 4217 code, or raise ``InvalidMoney`` naming the problem."""
    text = code.strip().upper()
    if len(text) != 3 or not text.isalpha():
        raise InvalidMoney(f"Currency {code.strip()!r} must be a three-letter ISO 4217 code.")
    if text not in list_currencies():
        raise InvalidMoney(f"Currency {text} is not an ISO 4217 currency code.")
    return text


def minor_units(currency: str) -> int:
    """How many decimals ``currency`` uses (JPY 0, EUR 2, KWD 3)."""
    return int(get_currency_precision(currency))


@dataclass(frozen=True)
class Money:
    """An amount in one currency, always rounded to that currency's minor units."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        currency = check_currency(self.currency)
        exponent = Decimal(1).scaleb(-minor_units(currency))
        object.__setattr__(self, "currency", currency)
        object.__setattr__(
            self, "amount", Decimal(self.amount).quantize(exponent, rounding=ROUND_HALF_EVEN)
        )

    @classmethod
    def parse(cls, amount: str, currency: str) -> Money:
        """Parse what staff typed (``12.50``, ``1,200.00``), refusing negatives and junk."""
        text = amount.strip().replace(",", "")
        if text.startswith("-") and _AMOUNT.fullmatch(text[1:]):
            raise InvalidMoney("An amount cannot be negative.")
        # Only plain digits: Decimal() would also take "NaN", "1e999999" or "1_000".
        if not _AMOUNT.fullmatch(text.removeprefix("+")):
            raise InvalidMoney(f"Amount {amount.strip()!r} is not a number.")
        money = cls(Decimal(text), currency)
        if money.amount >= MAX_AMOUNT:
            raise InvalidMoney(f"Amount {amount.strip()!r} is too large.")
        return money

    def format(self, locale: str = "en_US") -> str:
        """Format for display in ``locale``, e.g. ``€12.50`` or ``12,50 €``."""
        return str(format_currency(self.amount, self.currency, locale=locale))
