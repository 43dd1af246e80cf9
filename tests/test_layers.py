"""The one-way rules as facts: import contracts, no cycles, clocks read by measuring code."""
from __future__ import annotations

import ast
import fnmatch
import subprocess
import sysconfig
import textwrap
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gillab"

#: Modules whose import cycles are tolerated, each with why: none (the seven-module
#: cycle through gillab.interpreters ended with the gillab.pythons split).
CYCLE_ALLOW_LIST: set = set()

#: The modules that judge and report: they must not reach the extension either.
JUDGING = ("gillab.compare.verdict", "gillab.compare.records", "gillab.compare.report", "gillab.core.stats",
           "gillab.core.registry", "gillab.convoy.verdict", "gillab.convoy.records",
           "gillab.convoy.report")


def _graph() -> grimp.ImportGraph:
    """gillab's import graph, every import statement included (those in functions too).

    grimp cannot see the compiled gillab._kernels, so it reads `from gillab import
    _kernels` as an import of the package itself, and gillab.kernels would seem to
    import gillab/__init__.py (which imports it back, lazily): a cycle that is not one.
    Those imports are pointed at a gillab._kernels node instead.
    """
    graph = grimp.build_graph("gillab", cache_dir=None)
    graph.add_module("gillab._kernels")
    for importer in graph.find_modules_that_directly_import("gillab"):
        details = graph.get_import_details(importer=importer, imported="gillab")
        if any("_kernels" in d["line_contents"] for d in details):
            graph.remove_import(importer=importer, imported="gillab")
            graph.add_import(importer=importer, imported="gillab._kernels")
            for d in details:
                if "_kernels" not in d["line_contents"]:
                    graph.add_import(importer=importer, imported="gillab",
                                     line_number=d["line_number"],
                                     line_contents=d["line_contents"])
    return graph


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module: each holds a cycle."""
    seen: set[str] = set()
    cycles = []
    for module in sorted(graph.modules):
        if module in seen:
            continue
        component = ({module} | (graph.find_upstream_modules(module)
                                 & graph.find_downstream_modules(module)))
        seen |= component
        if len(component) > 1 or graph.direct_import_exists(importer=module, imported=module):
            cycles.append(sorted(component))
    return cycles


class TestContracts:
    """import-linter's contracts in pyproject.toml hold (lint-imports, as CI would run it)."""

    def test_lint_imports(self):
        script = Path(sysconfig.get_path("scripts")) / "lint-imports"
        result = subprocess.run([str(script), str(ROOT / "pyproject.toml"), "--no-cache"],
                                capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 broken" in result.stdout, result.stdout

    def test_judging_modules_do_not_load_the_extension(self):
        """Through gillab.kernels or directly: import-linter cannot name gillab._kernels
        (grimp does not see compiled modules), so the graph here puts it back."""
        graph = _graph()
        chains = [" -> ".join(graph.find_shortest_chain(importer=module,
                                                       imported="gillab._kernels"))
                  for module in JUDGING if module in graph.modules
                  and graph.chain_exists(importer=module, imported="gillab._kernels")]
        assert not chains, "\n".join(chains)


class TestCycles:
    """No import cycle in gillab/, imports inside functions included."""

    def test_no_cycles_outside_the_allow_list(self):
        graph = _graph()
        for module in CYCLE_ALLOW_LIST:
            graph.remove_module(module)  # every cycle through it goes with it
        cycles = _cycles(graph)
        assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)

    def test_imports_inside_functions_count(self, tmp_path, monkeypatch):
        """The graph sees an import inside a function body: the cycle check relies on it."""
        pkg = tmp_path / "layers_probe_pkg"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        (pkg / "low.py").write_text(textwrap.dedent("""
            def late():
                from layers_probe_pkg import high
                return high
        """))
        (pkg / "high.py").write_text("from layers_probe_pkg import low\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        graph = grimp.build_graph("layers_probe_pkg", cache_dir=None)
        assert _cycles(graph) == [["layers_probe_pkg.high", "layers_probe_pkg.low"]]


# --- clocks and CPU counters -----------------------------------------------------------

#: Where reading clocks and CPU counters is the job (paths under the repository,
#: fnmatch patterns; `*` crosses directories): gillab.measure, the one measuring core
#: every command uses; the demos, each of which times its own lesson as it narrates it;
#: and the timeline's /proc sampler driver (its native half is ext/_sampler.pyx).
MEASURING_MODULES = (
    "gillab/measure/*",
    "gillab/demos/*",
    "gillab/timeline/measure.py",
)

#: A clock read that is not a measurement, module by module: none. A deadline outside
#: gillab.measure goes through gillab.measure.bounded.
NOT_MEASUREMENTS: set = set()

CLOCKS = {f"time.{name}{ns}" for name in ("perf_counter", "monotonic", "thread_time",
                                          "process_time", "time", "clock_gettime")
          for ns in ("", "_ns")} | {"resource.getrusage", "os.times", "psutil.cpu_times"}
#: psutil's Process(...).cpu_times(), whatever the receiver is called.
CPU_METHODS = {"cpu_times"}


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def clock_reads(source: str) -> list[tuple[int, str]]:
    """(line, what) for every clock or CPU counter the source refers to.

    References count, not only calls (``clock = time.perf_counter`` reads a clock
    later), and so do aliases (``from time import perf_counter as now``).
    """
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else \
                    a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Attribute, ast.Name)) and isinstance(node.ctx, ast.Load):
            dotted = _dotted(node)
            if dotted is not None:
                head, _, rest = dotted.partition(".")
                full = aliases.get(head, head) + (f".{rest}" if rest else "")
                if full in CLOCKS:
                    found.append((node.lineno, full))
                    continue
            if isinstance(node, ast.Attribute) and node.attr in CPU_METHODS:
                found.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if text.startswith("/proc/") and text.rstrip("/").endswith("stat"):
                found.append((node.lineno, text))
        elif isinstance(node, ast.JoinedStr):  # f"/proc/{pid}/stat"
            parts = [v.value for v in node.values if isinstance(v, ast.Constant)]
            if parts and str(parts[0]).startswith("/proc/") and str(parts[-1]).endswith("stat"):
                found.append((node.lineno, "/proc/.../stat"))
    return sorted(set(found))


def _is_measuring(path: str) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in MEASURING_MODULES)


class TestClocks:
    """Only the measuring modules read clocks and CPU counters."""

    @pytest.mark.parametrize("source,expected", [
        ("import time\nt = time.perf_counter()", [(2, "time.perf_counter")]),
        ("from time import thread_time as now\nnow()", [(2, "time.thread_time")]),
        ("import time as t\nclock = t.monotonic_ns", [(2, "time.monotonic_ns")]),
        ("import resource\nresource.getrusage(resource.RUSAGE_SELF)",
         [(2, "resource.getrusage")]),
        ("import psutil\npsutil.Process().cpu_times()", [(2, ".cpu_times")]),
        ("open('/proc/stat')", [(1, "/proc/stat")]),
        ("open(f'/proc/{pid}/stat')", [(1, "/proc/.../stat")]),
        ("import time\ntime.sleep(1)\nperf_counter = 3", []),
    ])
    def test_the_scanner_sees_each_way_of_reading_a_clock(self, source, expected):
        assert clock_reads(source) == expected

    def test_only_measuring_modules_read_clocks(self):
        outside = []
        for path in sorted(PACKAGE.rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if _is_measuring(rel):
                continue
            for line, what in clock_reads(path.read_text()):
                if (rel, what) not in NOT_MEASUREMENTS:
                    outside.append(f"{rel}:{line}: {what}")
        assert not outside, ("clocks read outside the measuring modules (measure there, or "
                             "add the module to MEASURING_MODULES):\n" + "\n".join(outside))

    def test_the_measuring_list_names_real_modules(self):
        """A pattern that matches nothing is a typo."""
        files = [p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py")]
        missing = [p for p in MEASURING_MODULES
                   if not any(fnmatch.fnmatch(f, p) for f in files)]
        assert not missing, missing


#: Measuring modules that own their standard output: the gevent child's stdout is the
#: pipe its replies go through (it points sys.stdout at stderr for the tasks' prints).
OWNS_STDOUT = {"gillab/measure/gevent_child.py"}


def _measuring_core() -> list[str]:
    return sorted(p.relative_to(ROOT).as_posix() for p in (PACKAGE / "measure").rglob("*.py")
                  if p.relative_to(ROOT).as_posix() not in OWNS_STDOUT)


class TestMeasuringNeverPrints:
    """Measuring code returns data; the CLI prints."""

    @pytest.mark.parametrize("rel", [*_measuring_core(), "gillab/convoy/measuring.py"])
    def test_no_print_and_no_stdout(self, rel):
        tree = ast.parse((ROOT / rel).read_text())
        found = [f"{rel}:{node.lineno}" for node in ast.walk(tree)
                 if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                     and node.func.id == "print")
                 or (isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr")
                     and _dotted(node) in ("sys.stdout", "sys.stderr"))]
        assert not found, found
