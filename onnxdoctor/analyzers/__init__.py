"""Analyzers: one module per rule, each a generator of findings over a GraphAnalysis.

Register with `@analyzer("OD301")`; whole-model analyzers (`whole_model=True`) run once on
the main graph, the others on every graph (main, subgraph bodies, functions).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from onnxdoctor.analysis import GraphAnalysis
from onnxdoctor.findings import Finding


@dataclass(frozen=True)
class Analyzer:
    code: str
    function: Callable[[GraphAnalysis], Iterator[Finding]]
    whole_model: bool


REGISTRY: dict[str, Analyzer] = {}

_MODULES = (
    "invalid_model",
    "not_topologically_sorted",
    "cycle",
    "dead_nodes",
    "unfolded_constant",
    "fold_failure",
    "shape_dependent_subgraph",
    "int64_shape_constant",
    "int64_data_tensor",
    "int64_out_of_int32_range",
)


def analyzer(code: str, *, whole_model: bool = False):
    def register(function):
        if code in REGISTRY:
            raise RuntimeError(f"two analyzers for {code}")
        REGISTRY[code] = Analyzer(code, function, whole_model)
        return function

    return register


def load_analyzers() -> dict[str, Analyzer]:
    for module in _MODULES:
        importlib.import_module(f"onnxdoctor.analyzers.{module}")
    return REGISTRY


def run_analyzers(root: GraphAnalysis, codes: set[str]) -> list[Finding]:
    findings: list[Finding] = []
    for code, entry in sorted(load_analyzers().items()):
        if code not in codes:
            continue
        graphs = [root] if entry.whole_model else list(root.walk())
        for graph in graphs:
            findings.extend(entry.function(graph))
    return findings
