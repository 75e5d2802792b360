#!/usr/bin/env sh
# A certificate authority and a server certificate signed by it, for
# dashcam-server's TLS (--tls-cert server.pem --tls-key server.key); give the
# CA (ca.pem) to whatever checks the server (simulate --tls --tls-ca ca.pem).
# A self-signed certificate used as its own CA is refused by rustls
# (CaUsedAsEndEntity): hence two.
# Usage: deploy/make-tls-certs.sh [NAME ...]   (the names cameras connect to;
# default: localhost 127.0.0.1). Writes into the current folder.
set -eu
[ $# -eq 0 ] && set -- localhost 127.0.0.1
SAN=""
for n in "$@"; do
    case "$n" in
        *[!0-9.:]*) SAN="$SAN,DNS:$n" ;;
        *) SAN="$SAN,IP:$n" ;;
    esac
done
SAN=${SAN#,}
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
    -subj "/CN=dashcam-server CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=$1"
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$SAN" > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
    -extfile server.ext -out server.pem
rm -f server.csr server.ext ca.srl
echo "server.pem + server.key for the server; ca.pem for the clients (names: $SAN)"
