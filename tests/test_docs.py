"""Every mnistlab name the documents show resolves: the imports in their Python examples and
each dotted `mnistlab.x.y` they mention, so the docs follow the code when modules move.
(The notebook itself runs in tests/test_notebook.py.)"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE = re.compile(r"```python\n(.*?)```", re.S)
DOTTED = re.compile(r"\bmnistlab(?:\.[A-Za-z_][A-Za-z_0-9]*)+")


def resolve(dotted: str):
    """Import the longest module prefix of `dotted`, then follow the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(dotted)


def names_in(text: str) -> list[str]:
    found = []
    for block in CODE.findall(text):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.Import):
                found += [a.name for a in node.names if a.name.startswith("mnistlab")]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mnistlab"):
                found += [f"{node.module}.{a.name}" for a in node.names]
    found += [d for d in DOTTED.findall(text) if not d.endswith((".py", ".md"))]
    return sorted(set(found))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_mnistlab_name_a_document_shows_resolves(doc):
    missing = []
    for name in names_in(doc.read_text()):
        try:
            resolve(name)
        except (ImportError, AttributeError) as e:
            missing.append(f"{name} ({type(e).__name__}: {e})")
    assert not missing, f"{doc.name} names what the code no longer has:\n" + "\n".join(missing)


def test_the_check_sees_a_stale_path():
    text = "```python\nfrom mnistlab.lr_finder import lr_range_test\n```\nsee `mnistlab.steps.BatchStepper`"
    names = names_in(text)
    assert {"mnistlab.lr_finder.lr_range_test", "mnistlab.steps.BatchStepper"} <= set(names)
    for stale in names:
        with pytest.raises((ImportError, AttributeError)):
            resolve(stale)
