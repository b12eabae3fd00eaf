"""The demo's three modules import in one direction: records <- page <- run."""

from __future__ import annotations

from .test_structure import PACKAGE, _imported_names

EVALUATION = PACKAGE / "evaluation"
RECORDS, PAGE, RUN = "gencodec.evaluation.demo_records", "gencodec.evaluation.demo_page", "gencodec.evaluation.demo"


def _imports(module: str) -> set[str]:
    """The demo modules that `module` imports."""
    path = EVALUATION / f"{module.rpartition('.')[2]}.py"
    return {name for name in _imported_names(path) if name in (RECORDS, PAGE, RUN)
            or name.startswith((RECORDS + ".", PAGE + ".", RUN + "."))}


def _modules(names: set[str]) -> set[str]:
    return {next(m for m in (RECORDS, PAGE, RUN) if name == m or name.startswith(m + ".")) for name in names}


def test_records_import_neither_the_page_nor_the_run():
    assert _modules(_imports(RECORDS)) == set()


def test_the_page_is_written_from_records_alone():
    assert _modules(_imports(PAGE)) == {RECORDS}


def test_the_run_uses_both():
    assert _modules(_imports(RUN)) == {RECORDS, PAGE}
