"""No import cycles among jupyter_ext's modules (DESIGN.md, convention 12).

pyproject.toml's import-linter contracts (``lint-imports`` in .ci/run) check the layers and, with
``acyclic_siblings``, cycles between the sibling modules of a package. A cycle that passes
through a package's ``__init__`` (a module that imports its own package, which imports it back)
is no cycle between siblings, so this test looks at every module: it builds the import graph with
grimp (import-linter's graph library, imports inside functions included) and fails on any cycle,
printed import by import with the lines that make it.
"""

from __future__ import annotations

import os
from collections import deque

import pytest

if os.environ.get("CI") == "true":  # CI installs it (the test extras, with import-linter)
    import grimp
else:
    grimp = pytest.importorskip("grimp")

PACKAGE = "jupyter_ext"

# Imports that close a cycle known today, each with what removes it. Emptied as they go: an entry
# whose import is gone, or no longer closes a cycle, fails the test until it is taken out.
ALLOWED: dict[tuple[str, str], str] = {
}


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(PACKAGE)


def imports_of(graph, ignored=()) -> dict[str, set[str]]:
    modules = {m for m in graph.modules if m == PACKAGE or m.startswith(PACKAGE + ".")}
    return {m: {n for n in graph.find_modules_directly_imported_by(m)
                if n in modules and (m, n) not in ignored} for m in modules}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, without recursion)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    found.append(sorted(component))
    return found


def shortest_cycle(edges: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """start -> ... -> start, the fewest imports, inside one component."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(edges[node] & within):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start] + path[::-1][1:] + [start] if len(path) > 1 else [start, start]
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    return [start]


def describe(graph, path: list[str]) -> str:
    lines = []
    for importer, imported in zip(path, path[1:]):
        where = ", ".join(f"l.{d['line_number']} {d['line_contents']!r}"
                          for d in graph.get_import_details(importer=importer, imported=imported))
        lines.append(f"    {importer} -> {imported} ({where})")
    return "\n".join(lines)


def through_each(graph, edges: dict[str, set[str]], component: list[str]) -> str:
    """Shortest cycles until every module of the component is on one."""
    shown, covered = [], set()
    for module in component:
        if module not in covered:
            path = shortest_cycle(edges, module, set(component))
            covered.update(path)
            shown.append(describe(graph, path))
    return "\n    --\n".join(shown)


def test_no_import_cycle_among_jupyter_ext_modules(graph):
    edges = imports_of(graph, ignored=ALLOWED)
    found = cycles(edges)
    report = [f"  {len(c)} modules import each other: {', '.join(c)}:\n" + through_each(graph, edges, c)
              for c in found]
    assert not found, ("Import cycles in jupyter_ext (break each, e.g. by moving what both sides "
                       "need into a module of its own):\n" + "\n".join(report))


def test_every_allowed_import_still_closes_a_cycle(graph):
    """The allow-list only shrinks: an import that was removed, or no longer closes a cycle,
    leaves the list."""
    stale = []
    for importer, imported in ALLOWED:
        if not graph.direct_import_exists(importer=importer, imported=imported):
            stale.append(f"{importer} -> {imported}: no such import any more")
            continue
        edges = imports_of(graph, ignored=set(ALLOWED) - {(importer, imported)})
        if not any(importer in c and imported in c for c in cycles(edges)):
            stale.append(f"{importer} -> {imported}: closes no cycle any more")
    assert not stale, "Take these out of ALLOWED in tests/test_layers.py:\n  " + "\n  ".join(stale)
