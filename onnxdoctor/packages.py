"""Subpackages named like the API function they hold (bench, profile, doctor).

Importing `onnxdoctor.profile.report` makes the name `onnxdoctor.profile` the package, where the
API promises the function `onnxdoctor.profile(path, ...)`. A package that is also callable keeps
both promises, whichever was imported first; the function loads only when called.
"""

from __future__ import annotations

import importlib
import sys
import types


def callable_package(package: str, target: str) -> None:
    """Make the package `package` call `target` ("module:function") when called."""
    module_name, _, function = target.partition(":")

    class CallablePackage(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return getattr(importlib.import_module(module_name), function)(*args, **kwargs)

    sys.modules[package].__class__ = CallablePackage
