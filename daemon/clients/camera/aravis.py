"""Aravis, the GenICam library, reached through GObject introspection.

Debian packages it: ``apt install aravis-tools gir1.2-aravis-0.8 python3-gi``. The bindings
(``gi``) are built for the system's Python 3; defectd's virtual environment on the same Python
minor version reads them from the system's ``dist-packages`` when it has no ``gi`` of its own
(`import_aravis`). `.ci/run` and `make install-camera` install the packages.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from defectd.engines.errors import MissingDependency

SYSTEM_PACKAGES = "/usr/lib/python3/dist-packages"
INSTALL_HINT = (
    "apt install aravis-tools gir1.2-aravis-0.8 python3-gi (Debian/Ubuntu; the gateway then "
    f"reads the bindings from {SYSTEM_PACKAGES})"
)


def import_aravis() -> Any:
    """The ``Aravis`` 0.8 module, or MissingDependency naming the packages to install."""
    try:
        gi = importlib.import_module("gi")
    except ImportError:
        if SYSTEM_PACKAGES not in sys.path:
            sys.path.append(SYSTEM_PACKAGES)
        try:
            gi = importlib.import_module("gi")
        except ImportError:
            raise MissingDependency(f"defectd camera needs Aravis: {INSTALL_HINT}") from None
    try:
        gi.require_version("Aravis", "0.8")
        return importlib.import_module("gi.repository.Aravis")
    except (ValueError, ImportError) as exc:
        raise MissingDependency(
            f"defectd camera needs Aravis 0.8 ({exc}): {INSTALL_HINT}"
        ) from None


def list_devices(aravis: Any) -> list[dict[str, str]]:
    """Every camera Aravis finds: id, vendor, model, serial, address, protocol."""
    aravis.update_device_list()
    found = []
    for index in range(aravis.get_n_devices()):
        found.append(
            {
                "id": aravis.get_device_id(index) or "",
                "vendor": aravis.get_device_vendor(index) or "",
                "model": aravis.get_device_model(index) or "",
                "serial": aravis.get_device_serial_nbr(index) or "",
                "address": aravis.get_device_address(index) or "",
                "protocol": aravis.get_device_protocol(index) or "",
            }
        )
    return found
