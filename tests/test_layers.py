"""The package's shape: subpackages by concept, layers that only import downward, no circles.

The layers, written once (lowest first). A module may import its own layer and any below it;
``sslmem.train`` may not import ``sslmem.score``, ``sslmem.score`` may not import
``sslmem.pipeline``, and so on. Imports inside functions count: a lazy import is still a
dependency.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sslmem"
LAYERS = [
    ("base", {"sslmem", "sslmem.errors", "sslmem.io"}),
    ("train", {"sslmem.train"}),  # data, splits, augmentation, backbones, methods, fit, DP-SGD
    ("score", {"sslmem.score"}),  # SSLMem's scorer, probes, Déjà vu, reliability, agreement
    ("pipeline", {"sslmem.pipeline"}),  # config, store, experiments, ensembles, plan, executors
    ("book", {"sslmem.book"}),  # chapters' analyses, notebook helpers, figures, runner
    ("command line", {"sslmem.cli", "sslmem.__main__"}),
]
MAX_LINES = 450
MAX_TOP_LEVEL = 10


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts).removesuffix(".__init__")
        mods[name] = path
    return mods


def _layer(module: str) -> int:
    best = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or (prefix != "sslmem" and module.startswith(prefix + ".")):
                best = i
    if best is None:
        raise AssertionError(f"{module} is in no layer of tests/test_layers.py")
    return best


def _imports(module: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The sslmem modules ``module`` imports (at any depth of its code)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for candidate in [target] + [f"{target}.{a.name}" for a in node.names]:
                if candidate in mods:
                    found.add(candidate)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in mods}
    found.discard(module)
    # a module's own package __init__ is not an import of its own making
    return {m for m in found if not module.startswith(m + ".")}


@pytest.fixture(scope="module")
def graph():
    mods = _modules()
    return {m: _imports(m, p, mods) for m, p in mods.items()}


def test_every_module_is_in_a_layer(graph):
    for module in graph:
        _layer(module)


def _upward(graph) -> list[str]:
    return [f"{a} ({LAYERS[_layer(a)][0]}) imports {b} ({LAYERS[_layer(b)][0]})"
            for a, targets in sorted(graph.items()) for b in sorted(targets)
            if _layer(b) > _layer(a)]


def _circles(graph) -> list[list[str]]:
    """Tarjan's strongly connected components: each one of more than one module is a circle."""
    index, low, stack, on, circles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def test_no_import_runs_upward(graph):
    upward = _upward(graph)
    assert not upward, "\n".join(upward)


def test_no_import_circles(graph):
    circles = _circles(graph)
    assert not circles, circles


def test_the_checks_see_a_planted_circle_and_upward_import(graph):
    """The two checks could fail: a circle of three and a train -> book import are found."""
    planted = {k: set(v) for k, v in graph.items()}
    planted["sslmem.train.fit"].add("sslmem.book.plots")
    planted["sslmem.pipeline.store"].add("sslmem.pipeline.plan")  # plan -> units -> ... -> store
    assert _upward(planted) == ["sslmem.train.fit (train) imports sslmem.book.plots (book)"]
    (circle,) = _circles(planted)
    assert {"sslmem.pipeline.store", "sslmem.pipeline.plan"} <= set(circle)


def test_modules_are_short_and_the_top_level_is_small():
    long = [f"{p.relative_to(PACKAGE.parent)}: {n} lines"
            for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, long
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    subpackages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert len(top) <= MAX_TOP_LEVEL, top
    assert len(subpackages) >= 3, subpackages


def test_notebooks_narrate():
    """A chapter source computes through the library: at most 250 lines each."""
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    long = [f"{p.name}: {n} lines" for p in sorted(notebooks.glob("*.py"))
            if (n := len(p.read_text().splitlines())) > 250]
    assert not long, long
