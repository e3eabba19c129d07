"""The counts of issue #33's closing note, reproducible on any commit (static: nothing is imported).

    .venv/bin/python benchmarks/code_counts.py            # from the repository root

- `task ==` comparisons: a task named by a string and compared (`args.task == "superres"`);
- conditioning-kind comparisons: `kind == "text"`, `conditioning != "class"`, `kind not in ("text", ...)`;
- `# fmt: skip` markers per tree;
- import cycles between modules: strongly connected components (Tarjan) of the graph "module A imports
  module B" over hfldm (with hfldm.pipelines = pipelines/), every import statement counted, also the ones
  inside functions (a deferred import hides a cycle from Python, not from a reader);
- the longest functions (def to its last line).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

TREES = ("hfldm", "training", "pipelines", "space", "benchmarks", "tests")
SOURCE_TREES = ("hfldm", "training", "pipelines", "space")
PACKAGE_ROOTS = {"hfldm": Path("hfldm"), "hfldm.pipelines": Path("pipelines")}
TASK_COMPARISON = re.compile(r"\btask\s*(==|!=)")
FMT_SKIP = re.compile(r"# fmt: skip\s*$", re.MULTILINE)  # a marker ends its line
KIND_COMPARISON = re.compile(r"\b(kind|conditioning)\s*(==|!=|not in|in)\s*\(?\s*\"(text|class|none)\"")


def python_files(trees) -> list[Path]:
    return sorted(p for tree in trees for p in Path(tree).rglob("*.py") if ".venv" not in p.parts)


def count_lines(pattern: re.Pattern, trees) -> int:
    return sum(len(pattern.findall(p.read_text())) for p in python_files(trees))


def module_name(path: Path) -> str | None:
    """hfldm/training/tasks.py -> hfldm.training.tasks; pipelines/x.py -> hfldm.pipelines.x."""
    for package, root in sorted(PACKAGE_ROOTS.items(), key=lambda item: -len(str(item[1]))):
        if path.is_relative_to(root):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            return ".".join([package, *parts])
    return None


def import_graph() -> dict[str, set[str]]:
    """module -> the hfldm modules it imports (a `from package import name` of a submodule counts it)."""
    files = {module_name(p): p for p in python_files(("hfldm", "pipelines"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in files}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = {f"{node.module}.{a.name}" for a in node.names} & files.keys()
                edges |= subs or ({node.module} & files.keys())
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def longest_functions(trees, top: int = 5) -> list[tuple[int, str]]:
    lengths = []
    for path in python_files(trees):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lengths.append((node.end_lineno - node.lineno + 1, f"{path}::{node.name}"))
    return sorted(lengths, reverse=True)[:top]


def main() -> None:
    print(f"task comparisons (`task ==` / `task !=`): {count_lines(TASK_COMPARISON, SOURCE_TREES)}")
    print(f"conditioning-kind string comparisons: {count_lines(KIND_COMPARISON, SOURCE_TREES)}")
    markers = {tree: count_lines(FMT_SKIP, (tree,)) for tree in TREES}
    per_tree = ", ".join(f"{k} {v}" for k, v in markers.items())
    print(f"`# fmt: skip` markers: {sum(markers.values())}  ({per_tree})")
    found = cycles(import_graph())
    print(f"import cycles (strongly connected components): {len(found)}")
    for component in found:
        print("   ", " <-> ".join(component))
    print("longest functions:")
    for length, name in longest_functions(SOURCE_TREES):
        print(f"    {length:4d} lines  {name}")


if __name__ == "__main__":
    main()
