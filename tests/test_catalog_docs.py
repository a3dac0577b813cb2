"""docs/catalog.md is generated from conf/, current, complete, and the concepts are explained."""

from __future__ import annotations

import re
import subprocess
import sys

from lightdl.catalog_docs import CATALOG, catalog, header
from lightdl.cli_help import help_text
from lightdl.paths import group_names, options

GROUPS = [g for g in group_names() if g not in ("hydra", "paths")]
CONCEPT_GROUPS = (
    "activation",
    "init",
    "loss",
    "optimizer",
    "scheduler",
    "regularizer",
    "preprocess",
)
ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "et al.", "cf.", "approx.")


def sentences(text: str) -> int:
    """Number of sentences: pieces ending in . ! or ? followed by a space or the end."""
    for abbreviation in ABBREVIATIONS:
        text = text.replace(abbreviation, abbreviation.replace(".", ""))
    return len([s for s in re.split(r"[.!?]+(?=\s|$)", text) if s.strip()])


def test_catalog_is_up_to_date():
    assert CATALOG.is_file(), "docs/catalog.md is missing: run `make docs`"
    assert CATALOG.read_text() == catalog(), "docs/catalog.md is stale: run `make docs`"


def test_check_flag_reports_stale_catalog(tmp_path, monkeypatch):
    import lightdl.catalog_docs as catalog_docs

    monkeypatch.setattr(catalog_docs, "CATALOG", tmp_path / "catalog.md")
    assert catalog_docs.main(["--check"]) == 1
    assert catalog_docs.main([]) == 0
    assert catalog_docs.main(["--check"]) == 0


def test_every_option_is_in_the_catalog_and_in_help():
    text, help_lines = catalog(), help_text().splitlines()
    missing = []
    for group in GROUPS:
        start = help_lines.index(f"  {group}")
        section = []
        for line in help_lines[start + 1 :]:
            if not line.startswith("    "):
                break
            section.append(line[7:].split(" ", 1)[0])
        for option in options(group):
            if f"\n### {group}={option}" not in text:
                missing.append(f"catalog: {group}={option}")
            if option not in section:
                missing.append(f"--help: {group}={option}")
    assert not missing, f"options missing: {missing}"


def test_sentence_counter():
    assert sentences("No regularization.") == 1
    assert (
        sentences("Leaky ReLU: x for x > 0, alpha*x otherwise. The slope 0.01 keeps units alive.")
        == 2
    )
    assert sentences("He et al. 2015 showed it, e.g. for ReLU nets; see the paper.") == 1


def test_concept_headers_explain_in_two_sentences():
    short = [
        f"conf/{g}/{o}.yaml"
        for g in CONCEPT_GROUPS
        for o in options(g)
        if sentences(header(g, o)) < 2
    ]
    assert not short, (
        f"{len(short)} header comments need a summary line plus at least one sentence of "
        f"explanation: {', '.join(short)}"
    )


def test_generator_imports_neither_torch_nor_lightning():
    code = (
        "import sys, lightdl.catalog_docs as c; c.catalog(); "
        "print(sorted(m for m in ('torch', 'lightning', 'pytorch_lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
