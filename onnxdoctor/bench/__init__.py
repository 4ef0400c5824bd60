"""Bench: timing backends against each other, with statistics that say when a difference is real."""

from onnxdoctor.packages import callable_package

callable_package(__name__, "onnxdoctor.bench.run:bench")
