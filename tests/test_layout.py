"""The package's layout is its pipeline: each stage a subpackage, and stages import downward only.

Read from the source with `ast` (every `import`, also those inside functions),
so a lazy import that runs back up the pipeline fails here too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mnistlab"

# The pipeline, bottom up: a module may import its own stage and the stages below it.
# tuning and serving both sit on evaluation and do not know each other.
STAGES = {"data": 1, "models": 2, "lr_range": 3, "training": 4, "evaluation": 5, "tuning": 6, "serving": 6,
          "cli": 7}
# The shared basics every stage may use, and the entry points above everything.
BASICS = {"errors", "config", "runs", "summaries"}
TOP_LEVEL = {"__init__.py", "__main__.py"} | {f"{b}.py" for b in BASICS}


def stage_of(module: str) -> tuple[str, int] | None:
    """(stage, level) of a dotted module under mnistlab, or None for the package's face."""
    parts = module.split(".")
    if parts[0] != "mnistlab" or len(parts) == 1:
        return None
    if parts[1] in STAGES:
        return parts[1], STAGES[parts[1]]
    if parts[1] in BASICS:
        return "basics", 0
    if parts[1] == "__main__":
        return "main", 99
    raise AssertionError(f"{module} is in no stage: move it into one of {sorted(STAGES)}")


def imports_of(path: Path) -> list[tuple[str, int]]:
    """The mnistlab modules `path` imports (absolute form), with their line numbers."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("mnistlab")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mnistlab"):
            if node.module == "mnistlab":  # from mnistlab import runs, __version__
                found += [(f"mnistlab.{a.name}", node.lineno) for a in node.names
                          if (PACKAGE / f"{a.name}.py").exists() or (PACKAGE / a.name).is_dir()]
            else:
                found.append((node.module, node.lineno))
    return found


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        yield ".".join(p for p in rel.parts if p != "__init__"), path


def test_top_level_holds_only_the_entry_points_and_shared_basics():
    files = {p.name for p in PACKAGE.glob("*.py")}
    assert files <= TOP_LEVEL, f"move {sorted(files - TOP_LEVEL)} into a stage's folder"
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(STAGES), folders


def test_every_stage_says_what_it_does_and_where_to_start():
    for stage in STAGES:
        doc = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text()))
        assert doc and "first" in doc, f"mnistlab/{stage}/__init__.py: say what the stage does and what to read first"


def test_stages_import_downward_only():
    wrong = []
    for module, path in modules():
        here = stage_of(module)
        if here is None:
            continue
        for target, line in imports_of(path):
            there = stage_of(target)
            if there is None or there[0] == here[0]:
                continue
            if there[1] >= here[1]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({here[0]}) imports {target} ({there[0]})")
    assert not wrong, "imports that run up or across the pipeline:\n" + "\n".join(wrong)


def test_no_import_circle_between_modules():
    graph = {}
    names = dict(modules())
    for module, path in names.items():
        targets = set()
        for target, _ in imports_of(path):
            while target not in names and "." in target:  # from mnistlab.data.idx import read_idx
                target = target.rsplit(".", 1)[0]
            if target in names and target != module:
                targets.add(target)
        graph[module] = targets
    # A package's __init__ re-exporting its own modules is not a circle of ours.
    for module in graph:
        graph[module] = {t for t in graph[module] if not (module.startswith(t + ".") and t in names)}
    seen, stack, circles = set(), [], []

    def visit(node):
        if node in stack:
            circles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        stack.pop()

    for node in sorted(graph):
        visit(node)
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_the_check_can_fail(tmp_path):
    """A lazy import back up the pipeline is caught (the checker is not vacuous)."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from mnistlab.cli.main import main\n")
    assert ("mnistlab.cli.main", 2) in imports_of(bad)
    assert stage_of("mnistlab.cli.main")[1] > stage_of("mnistlab.models.steps")[1]
