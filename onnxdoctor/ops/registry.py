"""Facts about ops, keyed by (domain, op_type), each holding over a range of opsets.

After onnxscript's partial-evaluator registry: a fact is registered for an op once, with the
opset it starts in and, where a later opset changed it, the last opset it holds in (Squeeze
took its axes as an attribute until opset 12 and as input 1 from opset 13). A lookup names
the opset the model imports for the op's domain; None asks for every version at once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

# The default ONNX domain is written either way in models.
_ONNX_DOMAIN_ALIASES = {"ai.onnx": ""}


@dataclass(frozen=True)
class Versions:
    """The opsets a fact holds in: from `since` through `until` (None: still holds)."""

    since: int = 1
    until: int | None = None

    def include(self, opset: int | None) -> bool:
        if opset is None:
            return True
        return self.since <= opset and (self.until is None or opset <= self.until)


class VersionedFact(Protocol):
    versions: Versions


Fact = TypeVar("Fact", bound=VersionedFact)


def op_key(domain: str, op_type: str) -> tuple[str, str]:
    return _ONNX_DOMAIN_ALIASES.get(domain or "", domain or ""), op_type


class OpRegistry(Generic[Fact]):
    """Facts of one kind (input roles, say) for every op that has some."""

    def __init__(self) -> None:
        self._facts: dict[tuple[str, str], list[Fact]] = defaultdict(list)

    def register(self, op_type: str, *facts: Fact, domain: str = "") -> None:
        self._facts[op_key(domain, op_type)].extend(facts)

    def lookup(self, domain: str, op_type: str, opset: int | None = None) -> list[Fact]:
        """The facts about an op that hold in `opset` (every version's when None)."""
        return [fact for fact in self._facts.get(op_key(domain, op_type), ()) if fact.versions.include(opset)]

    def op_types(self, domain: str = "") -> frozenset[str]:
        """The ops of a domain with any fact registered."""
        wanted = op_key(domain, "")[0]
        return frozenset(op_type for (fact_domain, op_type) in self._facts if fact_domain == wanted)
