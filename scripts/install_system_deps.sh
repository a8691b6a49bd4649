#!/usr/bin/env bash
# System libraries for headless MuJoCo rendering (EGL via Mesa's software rasteriser,
# OSMesa as the fallback) and ffmpeg-free video (imageio-ffmpeg bundles its own).
# Called by the Makefile (and so by .ci/run); installs only what is missing.
set -euo pipefail
packages=(libegl1 libgl1 libgl1-mesa-dri libegl-mesa0 libosmesa6 libglu1-mesa)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "installing system packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
