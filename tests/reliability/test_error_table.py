"""Every row of the bad-input table (tests/reliability/_error_cases.py) raises the error it
names, with a message that names the argument, what it got and what is expected; and the
table in docs/errors.md is exactly the one generated from the current messages."""
from __future__ import annotations

import re

import pytest

import _error_cases as table

ROWS = [(i, case, kind) for i, case in enumerate(table.CASES, start=1)
        for kind in (("graph", "manual") if case.both else ("graph",))]


@pytest.fixture(scope="module")
def files_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model_files")
    table.make_files(directory)
    return directory


def test_the_table_has_at_least_40_rows():
    assert len(table.CASES) >= 40
    assert len({c.code for c in table.CASES}) == len(table.CASES), "duplicate rows"


@pytest.mark.parametrize("i,case,kind", ROWS,
                         ids=[f"{i:02d}-{kind}-{c.what[:40]}" for i, c, kind in ROWS])
def test_row_raises_its_documented_error(i, case, kind, files_dir, monkeypatch):
    monkeypatch.chdir(files_dir)
    message = table.check(case, kind)
    assert len(message) > 25, message


def test_docs_errors_md_table_is_up_to_date():
    text = table.DOC.read_text(encoding="utf-8")
    assert table.BEGIN in text and table.END in text
    generated = table.markdown()
    documented = table.documented_table(text)
    assert documented == generated, (
        "docs/errors.md is out of date with the messages; regenerate it with\n"
        "    python tests/reliability/_error_cases.py --write")


@pytest.mark.parametrize("doc, pattern", [("README.md", r"lists (\d+) cases, checked by a test"),
                                          ("docs/reliability.md", r"the table of (\d+) bad inputs")])
def test_the_docs_quote_the_tables_number_of_rows(doc, pattern):
    text = " ".join((table.ROOT / doc).read_text(encoding="utf-8").split())
    found = re.search(pattern, text)
    assert found, f"{doc} no longer says how many rows docs/errors.md has ({pattern!r})"
    assert int(found.group(1)) == len(table.CASES), (
        f"{doc} says {found.group(1)} rows; docs/errors.md has {len(table.CASES)}")
