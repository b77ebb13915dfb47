"""Which of Taller's two languages a text is written in: English or Spanish.

A count of common function words and of Spanish marks (¿ ¡ ñ and accents) is enough to tell a
question or a transcript excerpt apart; the video answers use it to answer in the language of the
question and to notice a question asked in the other language than the transcript, and the SQL
suggestions to write their follow-ups in the question's language.
"""

from __future__ import annotations

import re
import unicodedata

_SPANISH_MARKS = re.compile(r"[¿¡ñÑáéíóúÁÉÍÓÚ]")
_SPANISH_WORDS = frozenset(
    "el la los las del con por para que y en un una es al lo se su sus cuantos cuantas cual cuales como "
    "donde quien quienes hay mas menos cada muestra dame lista dice dijo sobre segun cuando porque "
    "pero tambien este esta estos estas ese esa eso qué cuál dónde cómo fue son ser muy ya sin entre "
    "nos nuestro nuestra video discurso presidente".split())
_ENGLISH_WORDS = frozenset(
    "the an of with and for to in is it what how many much which who where show list give most "
    "least each per are there by did does do was were say said about when why this that these those "
    "from has have had will would should our we he she they his her their speech talk video".split())


def fold(text: str) -> str:
    """Lower case without accents ("Económica" → "economica")."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def detect_language(text: str, default: str = "en") -> str:
    """``"es"`` or ``"en"``: the language ``text`` reads as (``default`` when it cannot tell)."""
    words = re.findall(r"[a-z]+", fold(text))
    spanish = sum(word in _SPANISH_WORDS for word in words) + len(_SPANISH_MARKS.findall(text))
    english = sum(word in _ENGLISH_WORDS for word in words)
    if spanish == english:
        return default
    return "es" if spanish > english else "en"


# --- numbers said in words -----------------------------------------------------------------------

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "cero": 0, "uno": 1, "un": 1, "una": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6,
    "siete": 7, "ocho": 8, "nueve": 9, "diez": 10, "once": 11, "doce": 12, "trece": 13, "catorce": 14,
    "quince": 15, "dieciseis": 16, "diecisiete": 17, "dieciocho": 18, "diecinueve": 19, "veinte": 20,
    "veintiuno": 21, "veintidos": 22, "veintitres": 23, "veinticuatro": 24, "veinticinco": 25,
    "veintiseis": 26, "veintisiete": 27, "veintiocho": 28, "veintinueve": 29, "treinta": 30,
    "cuarenta": 40, "cincuenta": 50, "sesenta": 60, "setenta": 70, "ochenta": 80, "noventa": 90,
    "cien": 100, "ciento": 100, "doscientos": 200, "trescientos": 300, "cuatrocientos": 400,
    "quinientos": 500, "seiscientos": 600, "setecientos": 700, "ochocientos": 800, "novecientos": 900,
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9, "mil": 1000,
           "millon": 10**6, "millones": 10**6}
_JOINERS = {"and", "y"}


def numbers_in(text: str) -> set[str]:
    """Every number ``text`` states, as digits: "1,200" and "ninety-nine" and "ciento treinta"
    (thousands separators dropped; a number in words joined with a scale: "130 million" gives
    both 130 and 130000000)."""
    # Thousands separators out, English or Spanish: "1,200" and "1.200" are 1200 ("31.5" stays).
    folded = re.sub(r"(?<=\d)[,.](?=\d{3}(?!\d))", "", fold(text))
    found = {re.sub(r"[,\s]", "", n).rstrip(".") for n in re.findall(r"\d[\d,]*(?:\.\d+)?", folded)}
    tokens = re.findall(r"\d+(?:\.\d+)?|[a-z]+", folded)
    total = current = None
    digits = False  # the number so far was written with digits: only a scale word may follow

    def flush() -> None:
        if current is not None or total is not None:
            number = (total or 0) + (current or 0)
            found.add(str(int(number)) if float(number).is_integer() else str(number))

    for token in tokens + ["."]:
        is_digits = token[0].isdigit()
        value = float(token) if is_digits else _UNITS.get(token)
        if value is not None and (digits or (is_digits and (current is not None or total is not None))):
            flush()
            total = current = None
        if value is not None:
            current, digits = (current or 0) + value, is_digits
            continue
        if token in _SCALES and (current is not None or token in ("hundred", "mil")):
            if current is not None and _SCALES[token] >= 1000:
                # "130 million" also states 130, as a reply may ("130 millones").
                found.add(str(int(current)) if float(current).is_integer() else str(current))
            current, digits = (current or 1) * _SCALES[token], False
            if _SCALES[token] >= 1000:
                total, current = (total or 0) + current, None
            continue
        if token in _JOINERS and (current is not None or total is not None) and not digits:
            continue
        flush()
        total = current = None
        digits = False
    return found
