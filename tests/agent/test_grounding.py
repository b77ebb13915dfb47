"""Grounded arguments: a value the LLM filled is kept only when the user's text supports it."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel

from taller.agent.grounding import (
    FieldRule,
    field_rules_from_schema,
    ground_arguments,
    grounded_enum,
    grounded_number,
    grounded_numbers,
    grounded_path,
    grounded_string,
    normalize,
    number_mentions,
    quoted_spans,
)
from taller.tools.database import QueryDatabaseArgs
from taller.tools.sequences import ForecastArgs, TranslateArgs
from taller.tools.training import GenerateImagesArgs, TrainModelArgs
from taller.tools.videos import AddVideoArgs, AskVideoArgs

MODEL_SYNONYMS = {"model": {"vae": ["variational", "variacional"], "seq2seq": ["translat*", "traduc*"]}}


# --- numbers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("train the vae for 5 epochs", [5]),
    ("make nine samples", [9]),
    ("genera nueve muestras", [9]),
    ("veintiún imágenes", [21]),
    ("veintiun imagenes", [21]),
    ("treinta y dos épocas", [32]),
    ("a dozen samples", [12]),
    ("una docena de muestras", [12]),
    ("half a dozen pictures", [6]),
    ("dieciséis o dieciseis", [16, 16]),
    ("twenty-one and twenty one", [21, 21]),
    ("two hundred and five", [205]),
    ("dos mil veinticuatro", [2024]),
    ("mil novecientos ochenta y cuatro", [1984]),
    ("a hundred steps", [100]),
    ("5 mil filas", [5000]),
    ("one and two", [1, 2]),  # "and" joins only after hundred/thousand
    ("dos y tres", [2, 3]),  # "y" joins only tens and units
    ("make a couple of images", [2]),
])
def test_number_words_in_english_and_spanish(text, expected):
    assert number_mentions(text) == expected


@pytest.mark.parametrize("text", [
    "someone often said hi",  # one, ten inside other words
    "train a vae",  # an article is not one
    "entrena un autoencoder",
    "train seq2seq and pix2pix on mp4 frames",  # digits inside names
    "classify img_003.png and forecast data/2024.csv",  # digits inside paths
    "add https://youtu.be/dQw4w9WgXcQ?t=30",
])
def test_text_without_numbers(text):
    assert number_mentions(text) == []


def test_once_and_ten_are_numbers_only_in_their_language():
    # "once" is 11 in Spanish and the adverb in English; "ten" is 10 in English and an
    # imperative in Spanish ("ten cuidado"). With no clue either way the word is a number.
    assert number_mentions("run it once") == []
    assert number_mentions("genera once muestras con el vae") == [11]
    assert number_mentions("ten cuidado con el modelo") == []
    assert number_mentions("make ten samples") == [10]
    assert number_mentions("once") == [11]


@pytest.mark.parametrize("text,expected", [
    ("1,5 y 3,25", [1.5, 3.25]),  # Spanish decimal comma
    ("2, 4, 6", [2, 4, 6]),  # comma and space: a list
    ("2,4,6,8", [2, 4, 6, 8]),  # several commas: a list
    ("1,500 rows", [1500]),  # three digits after the comma: thousands
    ("1,234,567", [1234567]),
    ("1.234,5 y 1,234.5", [1234.5, 1234.5]),
    ("-3.5 and 2-4", [-3.5, 2, 4]),  # a range is not a negative number
    ("1,5 millones", [1_500_000]),
])
def test_numbers_written_as_digits(text, expected):
    assert number_mentions(text) == expected


def test_ambiguous_separators_ground_both_readings():
    assert grounded_number(1500, ["1,500 rows"]) and grounded_number(1.5, ["1,500 rows"])
    assert grounded_number(1.5, ["1.500"]) and grounded_number(1500, ["1.500 filas"])
    assert not grounded_number(15, ["1,500 rows"])


def test_grounded_number():
    assert grounded_number(5, ["train the vae for 5 epochs"])
    assert grounded_number(5.0, ["train the vae for five epochs"])
    assert grounded_number("9", ["nueve muestras"])
    assert not grounded_number(5, ["train the vae"])
    assert not grounded_number(True, ["1"])  # a boolean is not a number
    assert grounded_number(10, ["train the vae", "train_model model=vae epochs=10"])  # from the thread


def test_every_number_of_a_list_must_appear():
    assert grounded_numbers([2, 4, 6.5], ["after 2, 4 and 6,5"])
    assert not grounded_numbers([2, 4, 7], ["after 2, 4 and 6"])
    assert not grounded_numbers([], ["after 2, 4 and 6"])


# --- quotes and strings --------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ('translate "I don\'t like it."', ["I don't like it."]),
    ("traduce 'it's raining'", ["it's raining"]),
    ("traduce «l'été»", ["l'été"]),
    ("“curly” and ‘single’", ["curly", "single"]),
    ("it's 'fine', and James' car is 'red'", ["fine", "red"]),  # apostrophes are not quotes
    ('say "she said \'hi\'"', ["she said 'hi'"]),  # outermost only
    ('an unclosed "quote', []),
])
def test_quoted_spans(text, expected):
    assert quoted_spans(text) == expected


def test_normalize():
    assert normalize("  Qué  “Día”\tTAN bueno’s ") == "que \"dia\" tan bueno's"


def test_grounded_string_tolerates_case_accents_quotes_and_a_closing_mark():
    request = 'translate "I don’t like it." please'
    assert grounded_string("I don't like it.", [request])
    assert grounded_string("i don't like it", [request])
    assert grounded_string('"I don\'t like it"', [request])
    assert grounded_string("¿Dónde está la biblioteca?", ["traduce donde esta la biblioteca"])
    assert not grounded_string("I do like it", [request])
    assert not grounded_string("don", ["translate london"])  # whole words only
    assert not grounded_string("", [request])


def test_identifiers_keep_their_case():
    assert grounded_string("dQw4w9WgXcQ", ["what does dQw4w9WgXcQ say about attention?"])
    assert not grounded_string("dqw4w9wgxcq", ["what does dQw4w9WgXcQ say about attention?"])


def test_a_path_must_appear_verbatim():
    request = "is ~/pics/Rex.JPG a dog?"
    assert grounded_path("~/pics/Rex.JPG", [request])
    assert not grounded_path("~/pics/rex.jpg", [request])  # another file on Linux
    assert not grounded_path("Rex.JPG", [request])  # part of a longer path: another file
    assert not grounded_path("~/pics/Rex.JPG.bak", [request])
    assert grounded_path("fotos/ana.png", ["¿qué emoción tiene la cara en fotos/ana.png?"])
    assert grounded_string("chinook.db", ["describe chinook.db"])
    assert not grounded_string("Chinook.db", ["describe chinook.db"])  # a file name is a path


def test_a_url_may_differ_only_in_scheme_and_host_case():
    assert grounded_path("https://youtu.be/dQw4w9WgXcQ", ["add HTTPS://YouTu.be/dQw4w9WgXcQ please"])
    assert grounded_path("https://youtu.be/dQw4w9WgXcQ", ["add youtu.be/dQw4w9WgXcQ"])  # scheme left out
    assert not grounded_path("https://youtu.be/dqw4w9wgxcq", ["add https://youtu.be/dQw4w9WgXcQ"])
    assert not grounded_path("https://youtu.be/dQw4w9WgXc", ["add https://youtu.be/dQw4w9WgXcQ"])


def test_enum_through_synonyms_with_word_boundaries():
    assert grounded_enum("vae", ["variational"], ["train the Variational autoencoder"])
    assert grounded_enum("vae", ["variacional"], ["entrena el autocodificador variacional"])
    assert grounded_enum("dense_classifier", [], ["train the dense classifier"])
    assert grounded_enum("seq2seq", ["traduc*"], ["entrena el traductor"])
    assert not grounded_enum("rnn", [], ["train the birnn"])
    assert not grounded_enum("vae", ["variational"], ["train the autoencoder"])
    # A word that only joins two others may be left out or written as a hyphen or a slash.
    assert grounded_enum("dense_classifier", ["cat or dog"], ["train the cat dog one again"])
    assert grounded_enum("dense_classifier", ["perro o gato"], ["el clasificador perro-gato"])
    assert grounded_enum("dense_classifier", ["cats vs dogs"], ["the cats/dogs model"])
    assert not grounded_enum("dense_classifier", ["cat or dog"], ["my cat ate the dog food"])


# --- a tool's arguments --------------------------------------------------------------------------

def _ground(schema, args, *sources, free_text=(), synonyms=None):
    rules = field_rules_from_schema(schema, free_text=free_text, synonyms=synonyms)
    return ground_arguments(args, rules, list(sources))


def test_an_invented_number_is_dropped_and_a_stated_one_kept():
    invented = _ground(TrainModelArgs, {"model": "vae", "epochs": 5}, "train the vae")
    assert invented.kept == {"model": "vae"} and "epochs" in invented.dropped
    stated = _ground(TrainModelArgs, {"model": "vae", "epochs": 5}, "train the vae for 5 epochs")
    assert stated.kept == {"model": "vae", "epochs": 5} and stated.dropped == {}
    article = _ground(TrainModelArgs, {"model": "vae", "epochs": 1}, "train a vae")
    assert "epochs" in article.dropped


@pytest.mark.parametrize("request_text", ["make 9 pictures with the VAE", "make nine samples with the variational one",
                                          "genera nueve muestras con el autocodificador variacional"])
def test_a_stated_sample_count_is_kept(request_text):
    grounding = _ground(GenerateImagesArgs, {"model": "vae", "count": 9, "image_path": "digit.png"}, request_text,
                        synonyms={"model": {"vae": ["variational", "variacional"]}})
    assert grounding.kept == {"model": "vae", "count": 9}
    assert list(grounding.dropped) == ["image_path"]


def test_forecast_steps_and_values_each_spend_their_own_mention():
    stated = _ground(ForecastArgs, {"values": [2, 4, 6, 8, 10, 12], "steps": 4},
                     "predict the next 4 numbers after 2, 4, 6, 8, 10, 12")
    assert stated.kept == {"values": [2, 4, 6, 8, 10, 12], "steps": 4}
    # The only 4 in the text is one of the values, so steps=4 was invented.
    invented = _ground(ForecastArgs, {"values": [2, 4, 6, 8, 10, 12], "steps": 4}, "forecast 2, 4, 6, 8, 10, 12")
    assert invented.kept == {"values": [2, 4, 6, 8, 10, 12]} and "steps" in invented.dropped
    missing = _ground(ForecastArgs, {"values": [2, 4, 6, 9]}, "forecast 2, 4, 6, 8")
    assert missing.kept == {} and "9" in missing.dropped["values"]


def test_forecast_values_as_text_or_a_path():
    assert _ground(ForecastArgs, {"values": "1, 2.5, 4"}, "forecast 1, 2.5, 4").kept == {"values": "1, 2.5, 4"}
    assert _ground(ForecastArgs, {"values": "ventas.csv"}, "pronostica ventas.csv").kept == {"values": "ventas.csv"}
    assert "values" in _ground(ForecastArgs, {"values": "sales.csv"}, "pronostica ventas.csv").dropped
    assert "values" in _ground(ForecastArgs, {"values": "the sales"}, "forecast the sales").dropped


def test_a_quoted_text_spends_its_own_numbers():
    alone = _ground(TranslateArgs, {"text": "I have 3 cats", "beam_size": 3}, 'translate "I have 3 cats"')
    assert alone.kept == {"text": "I have 3 cats"} and "beam_size" in alone.dropped
    with_beam = _ground(TranslateArgs, {"text": "I have 3 cats", "beam_size": 3},
                        'translate "I have 3 cats" with a beam of 3')
    assert with_beam.kept == {"text": "I have 3 cats", "beam_size": 3}
    apostrophe = _ground(TranslateArgs, {"text": "I don't like it."}, 'translate "I don\'t like it."')
    assert apostrophe.kept == {"text": "I don't like it."}
    assert "text" in _ground(TranslateArgs, {"text": "I like it"}, 'translate "I don\'t like it."').dropped


def test_database_and_video_named_in_the_question():
    named = _ground(QueryDatabaseArgs, {"question": "How many employees?", "database": "payroll"},
                    "in the payroll database, how many employees are there?", free_text={"question"})
    assert named.kept == {"question": "How many employees?", "database": "payroll"}
    default = _ground(QueryDatabaseArgs, {"question": "How many employees?", "database": "sales"},
                      "how many employees are there?", free_text={"question"})
    assert default.kept == {"question": "How many employees?"} and "database" in default.dropped
    video = _ground(AskVideoArgs, {"question": "what is attention?", "video": "dQw4w9WgXcQ"},
                    "in dQw4w9WgXcQ, what is attention?", free_text={"question"})
    assert video.kept == {"question": "what is attention?", "video": "dQw4w9WgXcQ"}


def test_the_thread_grounds_a_carried_over_value():
    thread = ["train the vae for 10 epochs", 'train_model {"model": "vae", "epochs": 10}']
    again = _ground(TrainModelArgs, {"model": "vae", "epochs": 10}, "again please", *thread)
    assert again.kept == {"model": "vae", "epochs": 10}
    assert "epochs" in _ground(TrainModelArgs, {"model": "vae", "epochs": 12}, "again please", *thread).dropped
    image = _ground(GenerateImagesArgs, {"model": "autoencoder", "image_path": "fotos/tres.png"},
                    "now the same image with the autoencoder", 'generate_images {"image_path": "fotos/tres.png"}')
    assert image.kept == {"model": "autoencoder", "image_path": "fotos/tres.png"}


def test_free_text_empty_none_and_unknown_fields():
    grounding = _ground(QueryDatabaseArgs, {"question": "total sales per genre", "database": None, "limit": 5},
                        "what are the sales per genre?", free_text={"question"})
    assert grounding.kept == {"question": "total sales per genre"}  # reworded, still kept
    assert list(grounding.dropped) == ["limit"]  # None is the default: neither kept nor dropped
    empty = _ground(QueryDatabaseArgs, {"question": "  "}, "hi", free_text={"question"})
    assert empty.kept == {} and empty.dropped == {"question": "empty"}


def test_an_enum_value_outside_the_choices_is_dropped():
    rules = {"model": FieldRule("enum", ("vae", "autoencoder"))}
    assert "not one of" in ground_arguments({"model": "gan"}, rules, ["train the gan"]).dropped["model"]


# --- rules from the tools' schemas ---------------------------------------------------------------

def test_rules_come_from_the_annotations():
    def kinds(schema, **options):
        return {name: rule.kind for name, rule in field_rules_from_schema(schema, **options).items()}

    assert kinds(TrainModelArgs) == {"model": "enum", "epochs": "number"}
    assert kinds(GenerateImagesArgs) == {"model": "enum", "count": "number", "image_path": "path"}
    assert kinds(ForecastArgs) == {"values": "numbers_or_path", "steps": "number"}
    assert kinds(TranslateArgs) == {"text": "string", "beam_size": "number"}
    assert kinds(AddVideoArgs) == {"url_or_path": "path"}
    assert kinds(QueryDatabaseArgs, free_text={"question"}) == {"question": "free_text", "database": "string"}
    rules = field_rules_from_schema(TrainModelArgs, synonyms=MODEL_SYNONYMS)
    assert "pix2pix" in rules["model"].choices and rules["model"].synonyms["vae"] == ("variational", "variacional")

    class Series(BaseModel):
        points: list[float]
        mode: Literal["fast", "slow"] | None = None

    assert kinds(Series) == {"points": "numbers", "mode": "enum"}


def test_a_schema_without_a_rule_is_an_error_that_names_the_field():
    class Odd(BaseModel):
        verbose: bool = False

    with pytest.raises(TypeError, match="Odd.verbose"):
        field_rules_from_schema(Odd)
    with pytest.raises(ValueError, match="questoin"):
        field_rules_from_schema(QueryDatabaseArgs, free_text={"questoin"})
    with pytest.raises(ValueError, match="vea"):
        field_rules_from_schema(TrainModelArgs, synonyms={"model": {"vea": ["variational"]}})


def test_grounding_reads_each_source_once():
    # Grounding runs on every plan; its speed comes from reading each text's numbers once
    # (bench figures in the module docstring, no timing here: CI machines are shared).
    from taller import text

    rules = field_rules_from_schema(ForecastArgs)
    args = {"values": [2, 4, 6, 8, 10, 12], "steps": 4}
    thread = ["forecast something for me", 'forecast {"values": [1, 2, 3], "steps": 2}']
    text._mentions.cache_clear()
    for index in range(200):
        kept = ground_arguments(args, rules, [f"predict the next 4 numbers after 2, 4, 6, 8, 10, 12 ({index % 50})", *thread])
        assert kept.kept == args
    info = text._mentions.cache_info()
    assert info.misses <= 52 and info.hits >= 200
