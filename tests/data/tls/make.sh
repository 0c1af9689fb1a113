#!/bin/sh
# Regenerate the test-only TLS material in this folder (EC P-256, valid 20 years).
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
set -eu
cd "$(dirname "$0")"
days=7300

openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -sha256 -days $days -subj "/CN=vehicle terminal test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.pem

openssl ecparam -name prime256v1 -genkey -noout -out server.key
openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days $days \
    -extfile server.ext -out server.pem

openssl ecparam -name prime256v1 -genkey -noout -out client.key
openssl req -new -key client.key -subj "/CN=TRK-0042" -out client.csr
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days $days \
    -extfile client.ext -out client.pem

# MicroPython's mbedTLS build reads DER only.
openssl x509 -in ca.pem -outform DER -out ca.der
openssl x509 -in client.pem -outform DER -out client.der
openssl ec -in client.key -outform DER -out client.key.der

# The CA key is deleted: nothing else is ever signed with this test CA.
rm -f server.csr client.csr server.ext client.ext ca.srl ca.key
# Readable by the mosquitto user when the broker drops root privileges.
chmod 644 server.key client.key client.key.der
