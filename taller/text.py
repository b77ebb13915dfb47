"""What a text says, read without a model: numbers (digits or words, English and Spanish),
quoted spans, the language, and the normalised form texts are compared in.

Base layer, pure standard library: the router grounds tool arguments with it
(:mod:`taller.agent.grounding`), and the SQL pipeline checks that a ``LIMIT`` is one the question
asked for (:mod:`taller.knowledge.sql.answer`).

Decisions (each one is tested in ``tests/agent/test_grounding.py``):

* Digits inside identifiers are not numbers ("seq2seq", "pix2pix", "mp4", "img_003"), nor are
  numbers inside paths and URLs ("data/2024.csv"): they would ground invented counts.
* A single comma between digits is a decimal comma ("1,5" = 1.5, "3,25" = 3.25) unless exactly
  three digits follow ("1,500" = 1500, though 1.5 also grounds); two or more commas make a list
  ("2,4,6") unless they group thousands ("1,234,567"). A comma followed by a space always
  separates numbers ("2, 4, 6"). "1.500" reads 1.5, and grounds 1500 too (Spanish thousands).
* Number words: zero to twenty, the tens, hundred(s), thousand, million and their Spanish
  counterparts, compounds ("twenty-one", "twenty one", "two hundred and five", "veintiún",
  "treinta y dos", "dos mil veinticuatro"), "a dozen"/"una docena" (12), "half a dozen"/"media
  docena" (6), and "a couple"/"a pair"/"un par" (2: the literal meaning, which is what a model
  that fills a count from it means). Accents are optional ("dieciséis"/"dieciseis").
* Articles are not numbers ("a", "an", "un", "una"), except before hundred/thousand/dozen: "train a
  VAE" must not ground ``epochs=1``. Ordinals and fractions ("first", "one and a half") are not
  read.
* A word that is a number in one language and an ordinary word in the other is not a number in
  text that reads as the other language: "once" is 11 in Spanish text and the adverb in English
  text; "ten" is 10 in English text and the imperative of *tener* in Spanish text ("ten
  cuidado"). The language is a count of common function words (and of ¿ ¡ ñ and accented
  vowels); with no clue either way (a tie, as in the one-word reply "once") the word is a number.

Normalised texts and their number mentions are cached, so reading one costs microseconds.
"""

from __future__ import annotations

import math
import re
import unicodedata
from functools import lru_cache
from typing import Any, Iterable, NamedTuple, Sequence

__all__ = [
    "Mention", "detect_language", "grounded_number", "grounded_numbers", "negated_numbers", "normalize",
    "number_mentions", "quoted_spans", "respelled",
]

# --- normalisation -------------------------------------------------------------------------------

# Curly quotes, guillemets, dashes and the minus sign all have one plain spelling, so a model
# that writes don’t for don't (or the other way round) still matches.
_PLAIN = str.maketrans({
    "“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'", "‚": "'", "‹": "'", "›": "'",
    "‐": "-", "‑": "-", "–": "-", "—": "-", "−": "-", "\u00a0": " ",
})


@lru_cache(maxsize=2048)
def _plain(text: str) -> str:
    """Plain quotes and dashes, whitespace collapsed; case and accents kept."""
    return " ".join(unicodedata.normalize("NFC", text).translate(_PLAIN).split())


@lru_cache(maxsize=2048)
def normalize(text: str) -> str:
    """The form texts are compared in: case-folded, without accents, plain quotes, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_PLAIN))
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join(folded.split())


def _edits(a: str, b: str, limit: int) -> int:
    """The optimal-string-alignment distance of ``a`` and ``b`` (a swap of two neighbouring letters
    is one edit), or ``limit + 1`` as soon as it is known to exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                current[j] = min(current[j], before[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        before, previous = previous, current
    return previous[-1]


# A word this long may be a misspelling of a known word one edit away ("bidireccinal"); from 12
# letters on, two edits. Shorter words are left alone: "gru"/"gan", "dense"/"dance" are words.
_RESPELL_MIN = 7
_RESPELL_TWO = 12


@lru_cache(maxsize=2048)
def _respelled_word(word: str, vocabulary: frozenset[str]) -> str:
    if len(word) < _RESPELL_MIN or word in vocabulary or not word.isalpha():
        return word
    limit = 2 if len(word) >= _RESPELL_TWO else 1
    close = [(_edits(word, known, limit), known) for known in vocabulary
             if len(known) >= _RESPELL_MIN and not known.endswith("*")]
    # Not an ending of the same word ("classifies" is not "classifier" misspelled).
    close = sorted(item for item in close if item[0] <= limit and item[1][:-1] != word[:-1])
    if not close or (len(close) > 1 and close[0][0] == close[1][0]):
        return word  # nothing near, or two known words equally near: no guess
    return close[0][1]


def respelled(text: str, vocabulary: frozenset[str]) -> str:
    """``text`` normalised, each long word that is not in ``vocabulary`` but one edit (two, for a
    long word) from exactly one word of it spelled as that word: "la lstm bidireccinal" → "la lstm
    bidireccional". A word that starts with a ``prefix*`` of the vocabulary is not a misspelling."""
    prefixes = tuple(known[:-1] for known in vocabulary if known.endswith("*"))
    words = normalize(text).split(" ")
    out = []
    for word in words:
        core = word.strip(".,;:!?¿¡()'\"")
        if core and not core.startswith(prefixes):
            fixed = _respelled_word(core, vocabulary)
            if fixed != core:
                word = word.replace(core, fixed)
        out.append(word)
    return " ".join(out)


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _contains(haystack: str, needle: str, *, before: Any = None, after: Any = None) -> bool:
    """Whether ``needle`` occurs in ``haystack`` without running into a neighbouring word.

    ``before``/``after`` test the characters around an occurrence (default: a word may not
    continue across the edge, so "one" is not found in "someone").
    """
    if not needle:
        return False
    start = haystack.find(needle)
    while start != -1:
        end = start + len(needle)
        left_ok = before(haystack, start) if before else (
            start == 0 or not (_is_word_char(needle[0]) and _is_word_char(haystack[start - 1])))
        right_ok = after(haystack, end) if after else (
            end == len(haystack) or not (_is_word_char(needle[-1]) and _is_word_char(haystack[end])))
        if left_ok and right_ok:
            return True
        start = haystack.find(needle, start + 1)
    return False


# --- quoted text ---------------------------------------------------------------------------------

# Opening double-style quote -> the characters that may close it (people mix straight and curly).
_DOUBLE_QUOTES = {'"': '"”', "“": '”"“', "„": '“”"', "«": "»", "‹": "›"}
_SINGLE_OPEN = "'‘"
_SINGLE_CLOSE = "'’"


def _single_quote_opens(text: str, index: int) -> bool:
    # An apostrophe inside a word (don't, l'eau) has a letter on its left; an opening quote does not.
    before = text[index - 1] if index else " "
    return not before.isalnum() and index + 1 < len(text) and not text[index + 1].isspace()


def _single_quote_end(text: str, start: int) -> int:
    """Index of the quote closing a single-quoted span that starts at ``start``, or -1."""
    for index in range(start + 1, len(text)):
        if text[index] in _SINGLE_CLOSE and not text[index - 1].isspace():
            # An apostrophe with a letter on both sides (it's, don't) is part of the text.
            if index + 1 == len(text) or not text[index + 1].isalnum():
                return index
    return -1


def quoted_spans(text: str) -> list[str]:
    """The texts between quotes, outermost only, in order: "…", “…”, «…», '…', ‘…’.

    An apostrophe inside a word does not end a single-quoted span, so ``'it's raining'`` is one
    span. A span still open at the end of the text is not a span. (A trailing possessive, as in
    ``'the dogs' bowl'``, does end one: it cannot be told from a closing quote.)
    """
    spans: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        end = -1
        if char in _DOUBLE_QUOTES:
            closers = _DOUBLE_QUOTES[char]
            end = next((i for i in range(index + 1, len(text)) if text[i] in closers), -1)
        elif char in _SINGLE_OPEN and _single_quote_opens(text, index):
            end = _single_quote_end(text, index)
        if end != -1:
            inside = text[index + 1:end].strip()
            if inside:
                spans.append(inside)
            index = end + 1
        else:
            index += 1
    return spans


# --- numbers -------------------------------------------------------------------------------------

class Mention(NamedTuple):
    """A number written in a text: its likeliest reading and every reading that grounds a value."""

    value: float
    readings: frozenset[float]


def _single(value: float) -> Mention:
    return Mention(value, frozenset({value}))


# Word -> (kind, value). Kinds: unit 0-9, teen 10-19, tens 20-90, tens_unit (Spanish one-word
# 21-29), hundreds (Spanish cien..novecientos, added), hundred (English, multiplies), scale
# (thousand, million: multiply what came before), dozen (times twelve, ends the number).
_NUMBER_WORDS: dict[str, tuple[str, int]] = {}
for _kind, _table in {
    "unit": {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
             "eight": 8, "nine": 9, "cero": 0, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5,
             "seis": 6, "siete": 7, "ocho": 8, "nueve": 9},
    "teen": {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
             "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "diez": 10, "once": 11,
             "doce": 12, "trece": 13, "catorce": 14, "quince": 15, "dieciseis": 16, "diecisiete": 17,
             "dieciocho": 18, "diecinueve": 19},
    "tens": {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
             "eighty": 80, "ninety": 90, "veinte": 20, "treinta": 30, "cuarenta": 40, "cincuenta": 50,
             "sesenta": 60, "setenta": 70, "ochenta": 80, "noventa": 90},
    "tens_unit": {"veintiuno": 21, "veintiun": 21, "veintiuna": 21, "veintidos": 22, "veintitres": 23,
                  "veinticuatro": 24, "veinticinco": 25, "veintiseis": 26, "veintisiete": 27,
                  "veintiocho": 28, "veintinueve": 29},
    "hundreds": {"cien": 100, "ciento": 100, "doscientos": 200, "doscientas": 200, "trescientos": 300,
                 "trescientas": 300, "cuatrocientos": 400, "cuatrocientas": 400, "quinientos": 500,
                 "quinientas": 500, "seiscientos": 600, "seiscientas": 600, "setecientos": 700,
                 "setecientas": 700, "ochocientos": 800, "ochocientas": 800, "novecientos": 900,
                 "novecientas": 900},
    "hundred": {"hundred": 100},
    "scale": {"thousand": 1000, "mil": 1000, "million": 1_000_000, "millon": 1_000_000, "millones": 1_000_000},
    "dozen": {"dozen": 12, "docena": 12, "docenas": 12},
}.items():
    for _word, _value in _table.items():
        _NUMBER_WORDS[_word] = (_kind, _value)

def is_number_word(word: str) -> bool:
    """Whether ``word`` is an English or Spanish number word ("five", "cinco", "veintidós")."""
    return normalize(word) in _NUMBER_WORDS


# Number words that are ordinary words in the other language: they count only in text that
# reads as the language where they are numbers.
_LANGUAGE_OF_AMBIGUOUS = {"once": "es", "ten": "en"}
_ARTICLES = {"a", "an", "un", "una"}
_COUPLES = {("a", "couple"), ("a", "pair"), ("un", "par")}
_HALVES = {"half", "media", "medio"}
# Words after which "one" stands for a thing, not a number: "that one", "the bidirectional one",
# "a bigger one", "which one". (Two words back counts too: "the" in "the bidirectional one".)
_POINTING = {"the", "this", "that", "which", "another", "each", "every", "any", "same", "other", "first",
             "last", "next", "previous", "a", "an", "new", "old", "right", "wrong", "little", "big"}

_SPANISH_WORDS = frozenset(
    "el la los las del con por para que y en un una unos unas es al lo se su sus mi mis esta este esto "
    "genera entrena hazme dame predice traduce cuantos cuantas cual como donde muestras imagenes epocas "
    "veces siguientes proximos pasos valores numeros datos base de".split())
_ENGLISH_WORDS = frozenset(
    "the an of with and for to in is it my this that what how many make train generate give show please "
    "times epochs samples images pictures next run predict translate beam steps values numbers after "
    "database from be do".split())
_SPANISH_LETTERS = re.compile(r"[¿¡ñÑáéíóúÁÉÍÓÚ]")

# URLs and path-like tokens (with a slash, or a name with an extension) hide their digits.
_URL_OR_PATH = re.compile(
    r"[a-z][\w+.-]*://\S+|[^\s\"'()\[\]<>]*[/\\][^\s\"'()\[\]<>]*|[\w~-]+(?:\.[\w~-]+)*\.[a-z][a-z0-9]{0,4}(?!\w)")
# A run of digits with single dots or commas inside; a minus sign counts when nothing word-like
# is glued to its left ("2-4" is a range, "-3" a negative number); digits glued to letters are
# part of a name ("seq2seq", "mp4").
_TOKEN = re.compile(
    r"(?P<number>(?:(?<![\w.,-])(?P<minus>-)(?=\d)|(?<![\w.,]))\d+(?:[.,]\d+)*)"
    r"|(?P<word>[^\W\d_]+)|(?P<mark>[^\w\s-])")


def _read_digits(chain: str) -> list[Mention]:
    """The number(s) a run like "3", "1,5", "1,500", "1.234,5" or "2,4,6" stands for."""
    separators = re.findall(r"[.,]", chain)
    parts = re.split(r"[.,]", chain)
    if not separators:
        return [_single(float(chain))]
    if len(separators) == 1:
        whole, fraction = parts
        decimal = float(f"{whole}.{fraction}")
        thousands = float(whole + fraction)
        if separators[0] == ".":
            return [Mention(decimal, frozenset({decimal, thousands} if len(fraction) == 3 else {decimal}))]
        if len(fraction) == 3 and len(whole) <= 3:
            return [Mention(thousands, frozenset({thousands, decimal}))]
        return [_single(decimal)]
    grouped = len(parts[0]) <= 3 and all(len(part) == 3 for part in parts[1:-1])
    if grouped and len(set(separators)) == 1 and len(parts[-1]) == 3:  # 1,234,567 or 1.234.567
        return [_single(float("".join(parts)))]
    if grouped and len(set(separators[:-1])) == 1 and separators[-1] != separators[0]:  # 1,234.5 or 1.234,5
        return [_single(float("".join(parts[:-1]) + "." + parts[-1]))]
    if "," in separators:  # a list written without spaces: 2,4,6 or 2.5,3.5
        return [mention for piece in chain.split(",") for mention in _read_digits(piece)]
    return [_single(float(part)) for part in parts]  # 1.2.3: a version, read as its parts


def detect_language(text: str, default: str = "en") -> str:
    """``"es"`` or ``"en"``: the language the request is written in (common words, ¿ ¡ ñ, accents)."""
    words = re.findall(r"[a-z]+", normalize(text))
    return _language(text, words) or default


def _language(text: str, words: Sequence[str]) -> str | None:
    spanish = sum(word in _SPANISH_WORDS for word in words) + len(_SPANISH_LETTERS.findall(text))
    english = sum(word in _ENGLISH_WORDS for word in words)
    return "es" if spanish > english else "en" if english > spanish else None


class _Words:
    """The word/number/mark tokens of one text, with the number-word grammar over them."""

    def __init__(self, tokens: list[Any], language: str | None) -> None:
        self.tokens = tokens
        self.language = language

    def word(self, index: int) -> str | None:
        token = self.tokens[index] if index < len(self.tokens) else None
        return token if isinstance(token, str) else None

    def kind(self, index: int) -> tuple[str | None, int]:
        word = self.word(index)
        if word is None or word not in _NUMBER_WORDS:
            return None, 0
        if word in _LANGUAGE_OF_AMBIGUOUS and self.language not in (None, _LANGUAGE_OF_AMBIGUOUS[word]):
            return None, 0
        return _NUMBER_WORDS[word]

    def below_hundred(self, index: int) -> tuple[int, int] | None:
        kind, value = self.kind(index)
        if kind in ("unit", "teen", "tens_unit"):
            return value, index + 1
        if kind != "tens":
            return None
        # "twenty one" (the hyphen of "twenty-one" is not a token) or "treinta y dos/un/una".
        joined = self.word(index + 1) == "y"
        unit_index = index + 2 if joined else index + 1
        unit_kind, unit = self.kind(unit_index)
        if unit_kind == "unit" and unit > 0:
            return value + unit, unit_index + 1
        if joined and self.word(unit_index) in ("un", "una"):
            return value + 1, unit_index + 1
        return value, index + 1

    def below_thousand(self, index: int) -> tuple[int, int] | None:
        kind, value = self.kind(index)
        if kind == "hundreds":
            hundreds, after = value, index + 1
        elif kind in ("unit", "teen") and value > 0 and self.kind(index + 1)[0] == "hundred":
            hundreds, after = value * 100, index + 2
        elif self.word(index) in _ARTICLES and self.kind(index + 1)[0] == "hundred":
            hundreds, after = 100, index + 2
        else:
            return self.below_hundred(index)
        rest_index = after + 1 if self.word(after) == "and" else after
        rest = self.below_hundred(rest_index)
        return (hundreds + rest[0], rest[1]) if rest else (hundreds, after)

    def _pronoun(self, index: int) -> bool:
        """Whether the "one" at ``index`` names a thing ("the bidirectional one") rather than a
        count ("one epoch", "train for one"): a pointing word one or two words before it, and no
        counted word after it (a word follows only as "one too", "one again", "one instead")."""
        before = self.word(index - 1) if index else None
        two_back = self.word(index - 2) if index > 1 else None
        pointed = before in _POINTING or (two_back in _POINTING and before is not None
                                          and before not in _NUMBER_WORDS)
        following = self.word(index + 1)
        return pointed and (following is None or not following.isalpha() or following in {"too", "again", "instead", "please", "also",
                                                                 "with", "and", "or", "but", "then", "now"})

    def number(self, index: int) -> tuple[int, int] | None:
        """The number written in words from ``index``: (value, index after it), or None."""
        word, following = self.word(index), self.word(index + 1)
        if word == "one" and self._pronoun(index):
            return None
        if (word, following) in _COUPLES:
            return 2, index + 2
        if word in _HALVES:
            dozen_index = index + 2 if following == "a" else index + 1
            if self.kind(dozen_index)[0] == "dozen":
                return 6, dozen_index + 1
        total, position, last_scale, found = 0, index, math.inf, False
        while True:
            group = self.below_thousand(position)
            if group is None and self.word(position) in _ARTICLES and self.kind(position + 1)[0] in ("scale", "dozen"):
                group = (1, position + 1)  # "a thousand", "una docena"
            if group is None and not found and self.word(position) == "mil":
                group = (1, position)  # "mil" alone is a thousand
            if group is None:
                break
            value, after = group
            kind, scale = self.kind(after)
            if kind == "dozen":
                return total + value * 12, after + 1
            if kind == "scale" and scale < last_scale:
                total, last_scale, found = total + value * scale, scale, True
                position = after + 1
                if self.word(position) == "and" and self.below_thousand(position + 1):
                    position += 1
                continue
            total, position, found = total + value, after, True
            break
        return (total, position) if found else None


@lru_cache(maxsize=2048)
def _mentions(text: str) -> tuple[Mention, ...]:
    folded = _URL_OR_PATH.sub(" ", normalize(text))
    tokens: list[Any] = []
    for match in _TOKEN.finditer(folded):
        if match.group("number"):
            sign = -1.0 if match.group("minus") else 1.0
            tokens += [Mention(sign * m.value, frozenset(sign * r for r in m.readings))
                       for m in _read_digits(match.group("number").lstrip("-"))]
        else:
            tokens.append(match.group("word") or match.group("mark"))
    words = _Words(tokens, _language(text, [t for t in tokens if isinstance(t, str)]))
    found: list[Mention] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if isinstance(token, Mention):
            kind, scale = words.kind(index + 1)
            if kind in ("hundred", "scale", "dozen"):  # "5 mil", "2 dozen", "1,5 millones"
                token = Mention(token.value * scale, frozenset(r * scale for r in token.readings))
                index += 1
            found.append(token)
            index += 1
            continue
        spelled = words.number(index)
        if spelled is None:
            index += 1
            continue
        found.append(_single(float(spelled[0])))
        index = spelled[1]
    return tuple(found)


def number_mentions(text: str) -> list[float]:
    """Every number written in ``text``, as digits or words (English, Spanish), in order."""
    return [mention.value for mention in _mentions(text)]


# "6, not 8", "instead of 8", "en vez de 8", "no 8 sino 6": the number after these words is the
# value a correction takes back, not a new one.
_NEGATION = re.compile(
    r"\b(?:not|no|instead\s+of|rather\s+than|en\s+vez\s+de|en\s+lugar\s+de)\s+"
    r"(?:the\s+|el\s+|la\s+|los\s+|las\s+)?(\S+(?:\s+\S+){0,2})", re.I)


def negated_starts(text: str) -> set[int]:
    """Where the phrases that ``text`` takes back start ("el de puntuación, no el traductor" → the
    offset of "traductor"): right after not / no / instead of / rather than / en vez de / en
    lugar de, and an article."""
    return {match.start(1) for match in _NEGATION.finditer(text)}


def negated_numbers(text: str) -> list[float]:
    """The numbers ``text`` takes back ("I meant 6, not 8" → [8]; "12 en vez de 10" → [10]):
    the first number right after not / no / instead of / rather than / en vez de / en lugar de."""
    found: list[float] = []
    for match in _NEGATION.finditer(text):
        # Only a number that starts the phrase ("not know 7 things" takes nothing back), read
        # with the words after it ("not twenty five" is 25, not 20).
        phrase = match.group(1)
        if _mentions(phrase.split()[0]):
            found.append(_mentions(phrase)[0].value)
    return found


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            return float(value.strip().replace(",", "."))
        except ValueError:
            return None
    return None


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def grounded_number(value: Any, sources: Iterable[str]) -> bool:
    """Whether the number ``value`` is written (digits or words) in one of ``sources``."""
    number = _as_number(value)
    if number is None:
        return False
    return any(_same(number, reading) for source in sources for mention in _mentions(source)
               for reading in mention.readings)


def grounded_numbers(values: Any, sources: Iterable[str]) -> bool:
    """Whether ``values`` is a non-empty list of numbers that are each written in ``sources``."""
    sources = list(sources)
    return isinstance(values, (list, tuple)) and bool(values) and all(grounded_number(v, sources) for v in values)
