"""Money: Decimal amounts rounded to their currency's minor units; parsing what staff type."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ill_tui.money import MAX_AMOUNT, InvalidMoney, Money, check_currency, minor_units

CURRENCIES = {"JPY": 0, "KRW": 0, "EUR": 2, "USD": 2, "GBP": 2, "KWD": 3, "BHD": 3}


@pytest.mark.parametrize(("currency", "places"), sorted(CURRENCIES.items()))
def test_minor_units(currency: str, places: int) -> None:
    assert minor_units(currency) == places


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("1234.5", "JPY", "1234"),  # half to even
        ("1235.5", "JPY", "1236"),
        ("0.4", "JPY", "0"),
        ("12.345", "EUR", "12.34"),
        ("12.355", "EUR", "12.36"),
        ("12.3451", "EUR", "12.35"),
        ("7", "EUR", "7.00"),
        ("1.0005", "KWD", "1.000"),
        ("1.0015", "KWD", "1.002"),
        ("0.12345", "KWD", "0.123"),
    ],
)
def test_rounding_to_minor_units(amount: str, currency: str, expected: str) -> None:
    money = Money(Decimal(amount), currency)
    assert money.amount == Decimal(expected)
    assert str(money.amount) == expected  # the exponent, too: 7.00, not 7
    assert money.currency == currency


def test_currency_is_upper_cased() -> None:
    assert Money(Decimal("1"), " eur ").currency == "EUR"
    assert check_currency("jpy") == "JPY"


@pytest.mark.parametrize("code", ["", "EU", "EURO", "E1R", "€", "XYZ", "QQQ", "12$"])
def test_bad_currency_codes_are_refused(code: str) -> None:
    with pytest.raises(InvalidMoney, match="urrency"):
        Money(Decimal("1"), code)
    with pytest.raises(InvalidMoney, match="urrency"):
        Money.parse("1.00", code)


@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [
        ("12.50", "USD", "12.50"),
        ("  12.5 ", "USD", "12.50"),
        ("1,200.00", "USD", "1200.00"),
        ("0", "EUR", "0.00"),
        (".5", "EUR", "0.50"),
        ("5.", "EUR", "5.00"),
        ("+5", "EUR", "5.00"),
        ("1500", "JPY", "1500"),
        ("2.5", "JPY", "2"),
        ("3.1415", "KWD", "3.142"),
        ("9999999999.99", "USD", "9999999999.99"),
    ],
)
def test_parse_what_staff_type(text: str, currency: str, expected: str) -> None:
    money = Money.parse(text, currency)
    assert money == Money(Decimal(expected), currency)
    assert str(money.amount) == expected


@pytest.mark.parametrize("text", ["-1", "-0.01", " -12.50", "-0", "-1,000"])
def test_parse_refuses_negatives(text: str) -> None:
    with pytest.raises(InvalidMoney, match="negative"):
        Money.parse(text, "EUR")


@pytest.mark.parametrize(
    "text",
    ["", "  ", "abc", "12.5.0", "1 000", "NaN", "nan", "Infinity", "-inf", "1e3", "1e999999",
     "1_000", "0x10", "$12", "12 EUR", "12,50€", "--1", "."],
)  # fmt: skip
def test_parse_refuses_junk(text: str) -> None:
    with pytest.raises(InvalidMoney, match="not a number"):
        Money.parse(text, "EUR")


@pytest.mark.parametrize(("text", "currency"), [("10000000000", "EUR"), ("9999999999.9999", "KWD")])
def test_parse_refuses_amounts_the_database_cannot_hold(text: str, currency: str) -> None:
    # NUMERIC(14, 4): PostgreSQL would refuse the row with a raw DataError otherwise.
    with pytest.raises(InvalidMoney, match="too large"):
        Money.parse(text, currency)


amounts = st.decimals(
    min_value=Decimal(0), max_value=MAX_AMOUNT - 1, allow_nan=False, allow_infinity=False, places=6
)


@given(amount=amounts, currency=st.sampled_from(sorted(CURRENCIES)))
def test_rounding_properties(amount: Decimal, currency: str) -> None:
    money = Money(amount, currency)
    places = CURRENCIES[currency]
    assert money.amount.as_tuple().exponent == -places
    assert abs(money.amount - amount) <= Decimal(1).scaleb(-places) / 2
    assert Money(money.amount, currency) == money  # rounding is idempotent
    assert Money.parse(str(money.amount), currency) == money  # what we show parses back
    assert Money.parse(f"{money.amount:,}", currency) == money  # with thousands separators


def test_format_uses_the_locale() -> None:
    assert Money(Decimal("1234.5"), "EUR").format("de_DE") == "1.234,50\xa0€"
    assert Money(Decimal("1234.5"), "USD").format("en_US") == "$1,234.50"
    assert Money(Decimal("1234"), "JPY").format("ja_JP") == "￥1,234"
