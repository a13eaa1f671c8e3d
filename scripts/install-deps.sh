#!/usr/bin/env bash
# scripts/install-deps.sh — installs the Debian 12 packages Switchboard builds and tests with.
# A fast no-op when they are all present; otherwise `apt-get update` once and install.
set -euo pipefail

packages=(
  # build
  cmake ninja-build ccache g++ clang libclang-rt-14-dev
  libboost1.81-dev libssl-dev libspdlog-dev libyaml-cpp-dev libcli11-dev nlohmann-json3-dev catch2
  libqpid-proton-cpp12-dev   # AMQP 1.0 engine (adapters/amqp)
  # integration-test clients
  python3 python3-stomp python3-paho-mqtt python3-yaml python3-qpid-proton mosquitto-clients libpaho-mqtt-dev libpaho-mqttpp-dev
  openssl   # the gateway tests make a self-signed certificate
  python3-websocket   # websocket-client: STOMP and AMQP frames over WebSocket (tests/integration/websocket_test.py)
  # integration-test backends behind the gateway (run by the tests on their own ports, never as
  # services): mosquitto, ActiveMQ 5.17 with its JMS client jars, a JDK to compile the test's client
  mosquitto activemq libactivemq-java openjdk-17-jdk-headless
  libxstream-java libjettison-java   # ActiveMQ's STOMP advisory messages (JSON) need them
  rabbitmq-server   # tests/bench/compare.sh (--amqp: its AMQP 1.0 plugin); started by the script only
  haproxy   # tests/bench/proxy_compare.sh (the relay beside HAProxy); started by the script only
)
# Packages whose service must not run: the tests start their own instances on free loopback
# ports, and a system broker on 1883 or 61616 would only get in the way.
services=(mosquitto activemq rabbitmq-server haproxy)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
# rhea (tests/integration/rhea, from the npm registry by `npm ci`) runs on Node.js: Debian's
# nodejs and npm unless a node and npm are already there (a newer Node.js from elsewhere is kept).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  for p in nodejs npm; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$p")
  done
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive

# Keep the maintainer scripts from starting services (invoke-rc.d and deb-systemd-invoke obey
# policy-rc.d: 101 = action forbidden); ours is removed afterwards, an existing one is left alone.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# written by switchboard scripts/install-deps.sh, removed when it ends\nexit 101\n' |
    $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  own_policy=1
  trap '$sudo rm -f "$policy"' EXIT
fi

$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"

# Newly installed broker services stay off at boot too (and stopped, should one have started).
for svc in "${services[@]}"; do
  [[ " ${missing[*]} " == *" $svc "* ]] || continue
  if [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$svc" ]; then
    $sudo update-rc.d "$svc" disable >/dev/null 2>&1 || true
    $sudo "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
  fi
done
if [ "$own_policy" = 1 ]; then
  $sudo rm -f "$policy"
  trap - EXIT
fi
if command -v ss >/dev/null && ss -Hltn 'sport = :1883 or sport = :61616' | grep -q .; then
  echo "warning: something listens on port 1883 or 61616; the tests use their own ports, but check:" >&2
  ss -ltnp 'sport = :1883 or sport = :61616' >&2 || true
fi
