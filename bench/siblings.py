"""Another benchmark of this folder, loaded as a module: ``sibling("metrics")`` is ``bench/metrics.py``.

``bench/`` is not a package, and importing ``api`` by name would find the project's ``api`` package, so a benchmark
that builds on another (its database, its load generator) loads that one by its path, once: a second ask is the
module already loaded.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def sibling(name: str) -> ModuleType:
    """``bench/<name>.py`` as the module ``bench_<name>``."""
    module_name = f"bench_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
