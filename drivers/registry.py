"""Find drivers by name: built-ins first, then the ``posgw.drivers`` entry points.

A driver class is imported only when a device asks for it. A plugin may add
new names but never replace a built-in: an entry point that reuses a built-in
name for another object is refused and reported.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import cast

from drivers.base import DriverClass
from drivers.errors import DriverLoadError, DriverNotFoundError

GROUP = "posgw.drivers"
BUILTIN: dict[str, str] = {
    "serial-scanner": "drivers.serial_scanner:SerialScanner",
    "pcsc": "drivers.pcsc_reader:PcscCardReader",
}


@dataclass(frozen=True, slots=True)
class DriverRegistry:
    targets: dict[str, str]
    refused: dict[str, str]

    @classmethod
    def discover(cls, extra: list[EntryPoint] | None = None) -> DriverRegistry:
        """Built-ins plus installed plugins (and ``extra``, for tests)."""
        targets = dict(BUILTIN)
        refused: dict[str, str] = {}
        for ep in [*entry_points(group=GROUP), *(extra or [])]:
            if ep.name in BUILTIN:
                if ep.value != BUILTIN[ep.name]:
                    refused[ep.name] = f"{ep.value} tried to replace the built-in {ep.name!r} driver"
                continue
            targets[ep.name] = ep.value
        return cls(targets, refused)

    def names(self) -> list[str]:
        return sorted(self.targets)

    def load(self, name: str) -> DriverClass:
        target = self.targets.get(name)
        if target is None:
            known = ", ".join(self.names())
            raise DriverNotFoundError(f"no driver named {name!r} (installed: {known})")
        module_name, _, attr = target.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise DriverLoadError(f"driver {name!r} ({target}) could not be loaded: {err}") from err
        if not callable(getattr(obj, "from_options", None)):
            raise DriverLoadError(f"driver {name!r} ({target}) has no from_options(); not a posgw driver")
        return cast("DriverClass", obj)
