#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real: headless Chromium (viewer page),
# systemd-analyze and a C compiler (the native reader). With --deploy (make test-deploy): what
# builds and boots a Debian container with systemd-nspawn and reaches it over SSH. Needs root
# (CI runs as root); otherwise says what to install.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# the native reader's tests compile it (eegpi build-native): a C compiler and the kernel headers
command -v cc >/dev/null 2>&1 || missing+=(gcc)
[ -e /usr/include/linux/spi/spidev.h ] || missing+=(libc6-dev linux-libc-dev)
if [ "${1:-}" = "--deploy" ]; then
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v systemd-nspawn >/dev/null 2>&1 || missing+=(systemd-container)
  command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
  command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
  command -v zstd >/dev/null 2>&1 || missing+=(zstd)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "eegpi tests need these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
