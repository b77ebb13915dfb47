"""The language and number readers the video answers rely on: which language a text is in, and
which numbers it states, in digits or words, English or Spanish (a check that lets an invented
number through, or rejects "ninety-nine" for 99, changes what users are told)."""

from __future__ import annotations

import pytest

from taller.knowledge.language import detect_language, numbers_in


@pytest.mark.parametrize("text, language", [
    ("¿Qué dijo el presidente sobre los impuestos?", "es"),
    ("que dijo reagan sobre el precio del petroleo", "es"),
    ("What did the president say about taxes?", "en"),
    ("Since the permanent formation of our Government under the Constitution", "en"),
])
def test_detect_language(text, language):
    assert detect_language(text) == language


@pytest.mark.parametrize("text, expected", [
    ("from 1815 to 1914—ninety-nine years—no war", {"1815", "1914", "99"}),
    ("one hundred and thirty million Americans, in forty-eight States", {"130", "130000000", "48"}),
    ("ciento treinta millones de personas y cuarenta y ocho estados", {"130", "130000000", "48"}),
    ("40 cents an hour; 1,200 tractors; 31.5 billion", {"40", "1200", "31.5", "31500000000"}),
    ("1.200 tapones y 2.5 kilos", {"1200", "2.5"}),
    ("cinco veces", {"5"}),
    ("no number here", set()),
])
def test_numbers_in_digits_and_words(text, expected):
    assert numbers_in(text) == expected
