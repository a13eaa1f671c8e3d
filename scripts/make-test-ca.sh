#!/bin/sh
# scripts/make-test-ca.sh — a throw-away certificate authority for tests and examples (openssl only).
#
#   scripts/make-test-ca.sh DIR [CLIENT...]
#
# Writes into DIR (created if needed; existing files are replaced):
#   ca.pem, ca.key                   the test CA (self-signed)
#   server.pem, server.key           the server: CN=localhost, SAN DNS:localhost, IP:127.0.0.1;
#                                    server.pem is the chain (server certificate, then the CA)
#   client-NAME.pem, client-NAME.key per CLIENT (default: device-1): CN=NAME,
#                                    SAN email:NAME@devices.test, URI:urn:switchboard:NAME
#   other-ca.pem, other-ca.key       another CA, and client-stranger.pem/.key signed by it
#                                    (a certificate a listener trusting ca.pem must refuse)
# Keys are EC P-256 (fast handshakes); certificates last DAYS days (environment, default 30).
#
# A listener with mutual TLS then reads:
#   tls: { cert: DIR/server.pem, key: DIR/server.key, ca: DIR/ca.pem, verify_client: required }
# and a client, e.g.: mosquitto_pub --cafile DIR/ca.pem --cert DIR/client-device-1.pem --key DIR/client-device-1.key
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 DIR [CLIENT...]" >&2
    exit 2
fi
dir=$1
shift
[ $# -gt 0 ] || set -- device-1
days=${DAYS:-30}
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# A self-signed CA: $1 file prefix, $2 subject.
ca() {
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days "$days" -subj "$2" \
        -addext "basicConstraints=critical,CA:true" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$1.pem" 2>/dev/null
}

# A leaf signed by a CA: $1 file prefix, $2 subject, $3 CA prefix, $4 extensions (one per line).
leaf() {
    key "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$4" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -sha256 -days "$days" \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

ca ca "/O=Switchboard Test/CN=Switchboard Test CA"
leaf server "/O=Switchboard Test/CN=localhost" ca "basicConstraints=CA:false
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"
cat ca.pem >> server.pem   # the chain a client is shown

for name in "$@"; do
    leaf "client-$name" "/O=Switchboard Test/CN=$name" ca "basicConstraints=CA:false
keyUsage=digitalSignature
extendedKeyUsage=clientAuth
subjectAltName=email:$name@devices.test,URI:urn:switchboard:$name"
done

ca other-ca "/O=Elsewhere/CN=Another CA"
leaf client-stranger "/O=Elsewhere/CN=stranger" other-ca "basicConstraints=CA:false
keyUsage=digitalSignature
extendedKeyUsage=clientAuth"
rm -f ca.srl other-ca.srl
chmod 600 ./*.key
echo "test CA in $dir: ca.pem, server.pem/.key, client-{$(echo "$@" | tr ' ' ',')}.pem/.key, other-ca.pem, client-stranger.pem/.key"
