#!/bin/sh
# Generates the throwaway test PKI used by unit and integration tests (never for production).
# Usage: tools/make-test-ca.sh OUTDIR      (the committed copy lives in tests/data/tls/)
# Needs only the openssl CLI (1.1.1 or 3.x). Every key is fresh on each run; the output is
# self-consistent, so re-running it and committing the whole directory is always safe.
#
# Output:
#   ca.crt ca.key                 test CA (EC P-256), 20 years
#   server.crt server.key         server cert for localhost (SAN DNS:localhost, IP:127.0.0.1, IP:::1)
#   client.crt client.key         client cert (APNs certificate-auth tests), EKU clientAuth
#   other-ca.crt other-ca.key     a second, unrelated CA ("unknown CA" tests)
#   other-server.crt other-server.key  localhost server cert signed by the second CA
#   apns-key.p8 apns-key.pub.pem  APNs-style token-auth key: EC P-256, PKCS#8 PEM, + public key
#   fcm-key.pem fcm-key.pub.pem   RSA-2048 key (PKCS#8 PEM) + public key
#   fcm-service-account.json      Google service-account-like JSON embedding fcm-key.pem;
#                                 token_uri has the placeholder PORT for tests to substitute
#   sig-input.txt fcm-key.rs256.sig apns-key.es256.der   openssl-made reference signatures
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
out=$1
mkdir -p "$out"
cd "$out"

days=7300  # 20 years: the committed output must outlive the project's CI
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

serial() { echo "0x$(openssl rand -hex 8)"; }

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# make_ca NAME CN
make_ca() {
  ec_key "$1.key"
  openssl req -new -x509 -key "$1.key" -sha256 -days "$days" -set_serial "$(serial)" \
    -subj "/O=aloha-bouncer tests/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$1.crt"
}

# make_leaf NAME CN CA EXTFILE-CONTENT
make_leaf() {
  ec_key "$1.key"
  openssl req -new -key "$1.key" -subj "/O=aloha-bouncer tests/CN=$2" -out "$tmp/$1.csr"
  printf '%s\n' "$4" > "$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$3.crt" -CAkey "$3.key" -set_serial "$(serial)" \
    -sha256 -days "$days" -extfile "$tmp/$1.ext" -out "$1.crt"
}

server_ext='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'

client_ext='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'

make_ca ca "aloha test CA"
make_leaf server localhost ca "$server_ext"
make_leaf client "aloha test client" ca "$client_ext"

make_ca other-ca "aloha other (untrusted) CA"
make_leaf other-server localhost other-ca "$server_ext"

# APNs token-auth keys are PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), EC P-256.
ec_key apns-key.p8
openssl pkey -in apns-key.p8 -pubout -out apns-key.pub.pem

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out fcm-key.pem
openssl pkey -in fcm-key.pem -pubout -out fcm-key.pub.pem

# JSON string of the PEM: newlines become \n (PEM has no quotes or backslashes).
pem_json=$(awk 'BEGIN { ORS = "" } { print $0 "\\n" }' fcm-key.pem)
key_id=$(openssl rand -hex 20)
cat > fcm-service-account.json <<EOF
{
  "type": "service_account",
  "project_id": "aloha-test-project",
  "private_key_id": "$key_id",
  "private_key": "$pem_json",
  "client_email": "aloha-test@aloha-test-project.iam.gserviceaccount.com",
  "client_id": "100000000000000000001",
  "auth_uri": "https://localhost:PORT/auth",
  "token_uri": "https://localhost:PORT/token",
  "universe_domain": "googleapis.com"
}
EOF

# Reference signatures made by openssl, so the unit tests check interoperability and not only
# a round trip through our own code: RS256 is deterministic (PKCS#1 v1.5), ES256 is DER here.
printf '%s' 'aloha-bouncer signature test vector' > sig-input.txt
openssl dgst -sha256 -sign fcm-key.pem -out fcm-key.rs256.sig sig-input.txt
openssl dgst -sha256 -sign apns-key.p8 -out apns-key.es256.der sig-input.txt

chmod 644 ./*.crt ./*.key ./*.pem ./*.p8 ./*.json ./*.sig ./*.der ./*.txt

# Sanity: the chains verify (fails the script, and so CI, if openssl output changed shape).
openssl verify -CAfile ca.crt server.crt client.crt >/dev/null
openssl verify -CAfile other-ca.crt other-server.crt >/dev/null
echo "test PKI written to $(pwd)"
