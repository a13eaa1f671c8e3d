#!/usr/bin/env bash
# scripts/install-deps.sh — installs the Debian 12 packages Switchboard builds and tests with.
# A fast no-op when they are all present; otherwise `apt-get update` once and install.
set -euo pipefail

packages=(
  # build
  cmake ninja-build ccache g++ clang libclang-rt-14-dev
  libboost1.81-dev libssl-dev libspdlog-dev libyaml-cpp-dev libcli11-dev nlohmann-json3-dev catch2
  # integration-test clients
  python3 python3-stomp python3-paho-mqtt mosquitto-clients libpaho-mqtt-dev libpaho-mqttpp-dev
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
