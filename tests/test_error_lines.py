"""A library's error becomes part of one line Supra says: its first line, cut short, never empty."""

from supra.utils.errors import first_line


def test_the_first_line_of_what_an_error_says_cut_at_the_limit() -> None:
    err = OSError("  cannot identify image file 'a.jpg'\nTraceback of the reader ...")
    assert first_line(err) == "cannot identify image file 'a.jpg'"
    assert first_line(err, 10) == "cannot ide"


def test_an_error_that_says_nothing_is_named_by_its_type() -> None:
    assert first_line(EOFError()) == "EOFError"
    assert first_line(KeyError(""), with_type=True) == "KeyError: ''"  # KeyError's str quotes its key
    assert first_line(ValueError("   \n"), with_type=True) == "ValueError"


def test_its_first_sentence_and_its_type_on_request() -> None:
    err = RuntimeError("PytorchStreamReader failed reading zip archive. failed finding central directory")
    assert first_line(err, sentence=True) == "PytorchStreamReader failed reading zip archive"
    assert first_line(err, 30, with_type=True) == "RuntimeError: PytorchStreamReader failed rea"
