"""The docs cite tests by name (``tests/…/test_x.py::test_name``, or ``::test_name`` for the test file cited last
before it): every one cited must exist, so the threat model never points at a test that was renamed or removed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_CITATION = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`|`::(\w+)`")


def citations(doc: Path) -> list[tuple[str, str]]:
    """(test file, test name) cited in `doc`; a bare ``::name`` refers to the file cited last before it."""
    found, current = [], None
    for match in _CITATION.finditer(doc.read_text()):
        path, name, bare = match.groups()
        if path:
            current = path
            found.append((path, name))
        else:
            assert current is not None, f"{doc.name}: ::{bare} cited before any test file"
            found.append((current, bare))
    return found


def functions_in(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text())
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


@pytest.mark.parametrize("doc", sorted((ROOT / "docs").glob("*.md")), ids=lambda p: p.name)
def test_every_test_a_doc_cites_exists(doc: Path) -> None:
    missing = [f"{path}::{name}" for path, name in citations(doc)
               if not (ROOT / path).exists() or name not in functions_in(path)]
    assert not missing, f"{doc.name} cites tests that do not exist: {missing}"


def test_the_threat_model_cites_tests() -> None:
    assert len(citations(ROOT / "docs" / "threat-model.md")) >= 40
