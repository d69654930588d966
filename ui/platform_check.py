"""Before Qt starts: can its platform plugin load here? If not, say which system
packages are missing, in one line, instead of Qt's abort (a core dump, exit 134).

pip brings Qt itself, not the X11 libraries its ``xcb`` plugin links against; a fresh
Debian machine lacks some (libxcb-icccm4, libxcb-keysyms1, libxcb-cursor0, ...). The
check reads the plugin's own dependencies with ``ldd`` (what the loader would resolve)
and tries the libraries Qt opens later with ``dlopen`` (the X cursor library). Nothing
here imports Qt.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from nerveseg.engines.errors import UserError

# soname → (Debian/Ubuntu package, Fedora package)
PACKAGES = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor"),
}
# Each other libxcb-NAME.so.N comes from Debian's libxcb-NAMEN and Fedora's libxcb.
# Opened by the plugin at run time (dlopen), so ldd does not list them.
DLOPENED = {"xcb": ("libxcb-cursor.so.0",)}
# Platforms that need no display and no system library beyond Qt's own.
HEADLESS = {"offscreen", "minimal", "vnc"}


def packages_for(sonames: list[str]) -> tuple[list[str], list[str]]:
    """``(Debian/Ubuntu packages, Fedora packages)`` that provide ``sonames``; a library of
    no known package is named as it is."""
    debian, fedora = [], []
    for soname in sonames:
        if soname in PACKAGES:
            pair = PACKAGES[soname]
        elif soname.startswith("libxcb-") and ".so." in soname:
            name, version = soname[len("libxcb-"):].split(".so.")
            pair = (f"libxcb-{name}{version}", "libxcb")
        else:
            pair = (soname, soname)
        for found, package in zip((debian, fedora), pair):
            if package not in found:
                found.append(package)
    return debian, fedora


def missing_libraries(plugin: Path, dlopened: tuple[str, ...] = ()) -> list[str]:
    """Sonames ``plugin`` (a shared object) needs that the loader cannot find here."""
    missing = []
    ldd = shutil.which("ldd")
    if ldd is not None:
        result = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=30)
        missing = [line.split("=>")[0].strip() for line in result.stdout.splitlines() if "not found" in line]
    for soname in dlopened:
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(soname)
    return list(dict.fromkeys(missing))


def qt_platform() -> str:
    """The platform Qt will pick: ``QT_QPA_PLATFORM`` (its first choice), else Wayland in
    a Wayland session, else xcb (X11)."""
    chosen = os.environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if chosen:
        return chosen
    wayland = os.environ.get("WAYLAND_DISPLAY") and os.environ.get("XDG_SESSION_TYPE") == "wayland"
    return "wayland" if wayland else "xcb"


def plugins_folder() -> Path | None:
    spec = importlib.util.find_spec("PyQt6")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "Qt6" / "plugins" / "platforms"


def check_platform(folder: Path | None = None) -> None:
    """Raise :class:`UserError` (one line) when Qt's platform plugin cannot start here:
    no display for it, no such plugin, or system libraries it needs are missing.
    ``folder``: Qt's platform plugins (default: PyQt6's own)."""
    if not sys.platform.startswith("linux"):
        return  # Qt's Windows and macOS plugins bring what they need
    platform, folder = qt_platform(), folder or plugins_folder()
    if platform in HEADLESS or folder is None:
        return
    if platform == "xcb" and not os.environ.get("DISPLAY"):
        raise UserError("no X display: DISPLAY is not set (run it on the machine's screen or over ssh -X; "
                        "QT_QPA_PLATFORM=offscreen runs without a window)")
    plugin = folder / f"libq{platform}.so"
    if not plugin.is_file():
        known = sorted(p.name[4:-3] for p in folder.glob("libq*.so"))
        raise UserError(f"QT_QPA_PLATFORM={platform}: no such Qt platform; this Qt has {', '.join(known)}")
    missing = missing_libraries(plugin, DLOPENED.get(platform, ()))
    if missing:
        debian, fedora = packages_for(missing)
        raise UserError(f"Qt's {platform} platform cannot load: missing {', '.join(missing)}; install "
                        f"on Debian/Ubuntu: apt-get install {' '.join(debian)} · "
                        f"on Fedora: dnf install {' '.join(fedora)}")
