"""Analyzers: one module per rule, each a generator of findings over a GraphAnalysis.

Register with `@analyzer("OD301")`; whole-model analyzers (`whole_model=True`) run once on
the main graph, the others on every graph (main, subgraph bodies, functions).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.collector import collection_paused
from onnxdoctor.report import Finding


@dataclass(frozen=True)
class Analyzer:
    code: str
    function: Callable[[GraphAnalysis], Iterator[Finding]]
    whole_model: bool


REGISTRY: dict[str, Analyzer] = {}



def analyzer(code: str, *, whole_model: bool = False):
    def register(function):
        if code in REGISTRY:
            raise RuntimeError(f"two analyzers for {code}")
        REGISTRY[code] = Analyzer(code, function, whole_model)
        return function

    return register


def load_analyzers() -> dict[str, Analyzer]:
    """Every analyzer: each module of this package registers its own (discovered, not listed)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return REGISTRY


@collection_paused()
def run_analyzers(root: GraphAnalysis, codes: set[str]) -> list[Finding]:
    findings: list[Finding] = []
    for code, entry in sorted(load_analyzers().items()):
        if code not in codes:
            continue
        graphs = [root] if entry.whole_model else list(root.walk())
        for graph in graphs:
            findings.extend(entry.function(graph))
    return findings
