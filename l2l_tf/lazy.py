"""Package attributes imported on first access (PEP 562), so that importing a package stays free
of TensorFlow: the binaries parse and check their flags, and refuse a bad command line, before
TensorFlow loads (a fraction of a second instead of several)."""
from __future__ import annotations

import importlib
from typing import Callable, Mapping


def lazy_attributes(package: str, modules: Mapping[str, str],
                    namespace: dict) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`: attribute NAME is `package.modules[NAME].NAME`,
    imported when first read and then kept in `namespace` (the package's globals())."""
    def __getattr__(name: str):
        if name in modules:
            value = getattr(importlib.import_module(f"{package}.{modules[name]}"), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(modules))

    return __getattr__, __dir__
