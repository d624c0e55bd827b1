"""What the demo bot answers from (decision 0031): the docs that describe Parley as it is, with
a page that answers how to install it; never a design record (history, old bugs included) or
the benchmark report (generated, and it quotes Q1's own questions and answers)."""

from __future__ import annotations

from parley.demo.seed import doc_pages, docs_dir


def test_the_demo_knowledge_leaves_out_design_records_and_the_benchmark_report() -> None:
    folder = docs_dir()
    assert folder is not None  # a source checkout
    names = {p.relative_to(folder).as_posix() for p in doc_pages()}
    assert {"index.md", "getting-started.md", "bots.md"} <= names
    assert not {n for n in names if n.startswith("decisions/")}
    assert "benchmarks.md" not in names
    # Everything else in docs/ is knowledge: a new page is indexed without a list to update.
    every = {p.relative_to(folder).as_posix() for p in folder.rglob("*.md")}
    left_out = every - names
    assert left_out == {n for n in every if n.startswith("decisions/")} | {"benchmarks.md"}


def test_the_getting_started_page_says_how_to_install_and_test_in_prose() -> None:
    folder = docs_dir()
    assert folder is not None
    text = (folder / "getting-started.md").read_text()
    assert "To install Parley, clone the repository and run `make run`" in text
    assert "To run the test suite, run `make test`" in text
