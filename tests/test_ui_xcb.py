"""The live view on a real X server (Xvfb) with Qt's xcb platform, and the check that
runs before Qt: a platform that cannot load is one line naming the missing system
packages (Debian/Ubuntu and Fedora), exit 2, instead of Qt's abort."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nerveseg.engines.errors import UserError
from nerveseg.ui import platform_check

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = platform_check.plugins_folder()


def _view(env: dict, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nerveseg.commands.cli", "view", *argv], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def x_display():
    """A real X server (Xvfb) on a free display number; CI installs it
    (scripts/system_packages.sh), so there it must be present."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Xvfb is missing in CI: scripts/system_packages.sh did not install it")
        pytest.skip("no Xvfb here (./scripts/system_packages.sh installs it)")
    read, write = os.pipe()
    server = subprocess.Popen([xvfb, "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as numbers:
        display = numbers.readline().strip()  # Xvfb writes its display number once it is ready
    try:
        assert display, "Xvfb did not start"
        yield f":{display}"
    finally:
        server.terminate()
        server.wait(10)


def test_the_view_opens_a_real_window_on_an_x_server(x_display, tmp_path):
    env = {**os.environ, "DISPLAY": x_display, "QT_QPA_PLATFORM": "xcb"}
    shot = tmp_path / "window.png"
    result = _view(env, "--source", "samples/stereo_sample.mp4", "--out", str(tmp_path / "view"),
                   "--size", "960x720", "--screenshot", str(shot), "--after", "2.5")
    assert result.returncode == 0, result.stderr
    import cv2

    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (720, 960)
    # Frames reached the screen: the picture's middle is tissue (high contrast, many grey
    # levels), not an empty widget (the frame shown depends on timing: nerve or tendon).
    middle = image[150:550, 250:700]
    assert middle.std() > 20 and len(np.unique(middle)) > 100


def test_no_display_is_one_line_before_qt_starts():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = _view({**env, "QT_QPA_PLATFORM": "xcb"}, "--source", "samples/stereo_sample.mp4")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "nerveseg view: error: no X display: DISPLAY is not set (run it on the machine's screen or over "
        "ssh -X; QT_QPA_PLATFORM=offscreen runs without a window)")


def test_an_unknown_platform_lists_the_ones_there_are():
    result = _view({**os.environ, "QT_QPA_PLATFORM": "nosuch"}, "--source", "samples/stereo_sample.mp4")
    assert result.returncode == 2
    assert "QT_QPA_PLATFORM=nosuch: no such Qt platform; this Qt has" in result.stderr and "xcb" in result.stderr


@pytest.mark.skipif(PLUGINS is None or not (PLUGINS / "libqxcb.so").is_file(), reason="no xcb plugin")
def test_a_missing_system_library_is_named_with_its_packages(tmp_path, monkeypatch):
    """A copy of Qt's real xcb plugin whose dependency on libxcb-icccm is renamed (same
    length, in its dynamic string table) to a library no system has: the loader cannot
    resolve it, exactly as on a machine without the package."""
    data = (PLUGINS / "libqxcb.so").read_bytes()
    assert data.count(b"libxcb-icccm.so.4\x00") >= 1
    # Laid out like PyQt6's Qt6/ folder, so that the plugin's RUNPATH ($ORIGIN/../../lib)
    # finds Qt's own libraries as it does in place.
    plugins = tmp_path / "Qt6" / "plugins" / "platforms"
    plugins.mkdir(parents=True)
    (tmp_path / "Qt6" / "lib").symlink_to(PLUGINS.parents[1] / "lib")
    (plugins / "libqxcb.so").write_bytes(data.replace(b"libxcb-icccm.so.4\x00", b"libxcb-qqqqq.so.4\x00"))
    assert platform_check.missing_libraries(plugins / "libqxcb.so") == ["libxcb-qqqqq.so.4"]
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":0")
    with pytest.raises(UserError) as caught:
        platform_check.check_platform(plugins)
    message = str(caught.value)
    assert message.startswith("Qt's xcb platform cannot load: missing libxcb-qqqqq.so.4")
    assert "apt-get install libxcb-qqqqq4" in message and "dnf install libxcb" in message


def test_known_libraries_map_to_each_family_s_package():
    debian, fedora = platform_check.packages_for(["libxcb-icccm.so.4", "libxcb-keysyms.so.1",
                                                  "libxcb-cursor.so.0", "libxcb-xinerama.so.0"])
    assert debian == ["libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0", "libxcb-xinerama0"]
    assert fedora == ["xcb-util-wm", "xcb-util-keysyms", "xcb-util-cursor", "libxcb"]
