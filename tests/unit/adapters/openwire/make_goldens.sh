#!/usr/bin/env bash
# tests/unit/adapters/openwire/make_goldens.sh DIR — compiles GoldenWriter.java against Debian's
# libactivemq-java and writes the golden OpenWire streams into DIR (see GoldenWriter.java).
# Regenerate the committed ones with: make_goldens.sh tests/unit/adapters/openwire/golden
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$1
lib=/usr/share/java
cp="$lib/activemq-client.jar:$lib/activemq-openwire-legacy.jar:$lib/geronimo-jms_1.1_spec.jar:$lib/geronimo-j2ee-management-1.1-spec.jar:$lib/hawtbuf.jar:$lib/slf4j-api.jar:$lib/slf4j-nop.jar"
classes=$(mktemp -d)
trap 'rm -rf "$classes"' EXIT
javac -nowarn -d "$classes" -cp "$cp" "$here/GoldenWriter.java"
java -Xshare:auto -XX:TieredStopAtLevel=1 -cp "$classes:$cp" GoldenWriter "$out"
