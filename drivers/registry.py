"""Find plugins by name: built-ins first, then a group of entry points.

Drivers come from ``posgw.drivers``; payment providers, built the same way,
from ``posgw.payments``. A plugin class is imported only when a device or a
provider asks for it. A plugin may add new names but never replace a
built-in: an entry point that reuses a built-in name for another object is
refused and reported.
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
    "escpos-printer": "drivers.receipt_printer:EscPosPrinter",
}


@dataclass(frozen=True, slots=True)
class PluginRegistry:
    kind: str  # what a plugin is, for messages: "driver", "payment provider"
    targets: dict[str, str]
    refused: dict[str, str]

    @classmethod
    def scan(cls, kind: str, group: str, builtin: dict[str, str], extra: list[EntryPoint]) -> PluginRegistry:
        targets = dict(builtin)
        refused: dict[str, str] = {}
        for ep in [*entry_points(group=group), *extra]:
            if ep.name in builtin:
                if ep.value != builtin[ep.name]:
                    refused[ep.name] = f"{ep.value} tried to replace the built-in {ep.name!r} {kind}"
                continue
            targets[ep.name] = ep.value
        return cls(kind, targets, refused)

    def names(self) -> list[str]:
        return sorted(self.targets)

    def load_object(self, name: str) -> object:
        """The plugin's class; it must have a ``from_options`` constructor."""
        target = self.targets.get(name)
        if target is None:
            known = ", ".join(self.names())
            raise DriverNotFoundError(f"no {self.kind} named {name!r} (installed: {known})")
        module_name, _, attr = target.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise DriverLoadError(f"{self.kind} {name!r} ({target}) could not be loaded: {err}") from err
        if not callable(getattr(obj, "from_options", None)):
            raise DriverLoadError(f"{self.kind} {name!r} ({target}) has no from_options(); not a posgw {self.kind}")
        return cast("object", obj)


class DriverRegistry(PluginRegistry):
    __slots__ = ()

    @classmethod
    def discover(cls, extra: list[EntryPoint] | None = None) -> DriverRegistry:
        """Built-ins plus installed plugins (and ``extra``, for tests)."""
        found = PluginRegistry.scan("driver", GROUP, BUILTIN, extra or [])
        return cls(found.kind, found.targets, found.refused)

    def load(self, name: str) -> DriverClass:
        return cast("DriverClass", self.load_object(name))
