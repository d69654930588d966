#!/usr/bin/env bash
# The system libraries the live view's X11 (xcb) window needs, which pip cannot bring,
# and Xvfb (a virtual X display: the test that opens the real window uses it).
# Debian/Ubuntu, as root. Does nothing (in well under a second) when all are present,
# so CI pays for apt only on a machine that lacks them. Fedora: see README.md.
set -euo pipefail
packages=(xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
          libxcb-randr0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0 libx11-xcb1
          libegl1 libfontconfig1 libdbus-1-3)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "scripts/system_packages.sh: missing ${missing[*]}; install them as root (apt-get install ...)" >&2
    exit 1
fi
echo "installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
