// JWS signatures with mbedTLS PK. mbedTLS produces and expects ECDSA signatures as DER
// (SEQUENCE { INTEGER r, INTEGER s }); JWS ES256 uses the fixed-width r||s form (RFC 7518
// §3.4), so both directions convert here.
#include "net/pk.h"

#include <vector>

#include <mbedtls/asn1.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>

#include "core/log.h"
#include "net/mbedtls_compat.h"
#include "net/tls_util.h"

namespace aloha::net {

namespace {

constexpr size_t kP256Bytes = 32;

bool sha256(std::string_view data, unsigned char out[32]) {
  const mbedtls_md_info_t* md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
  return md != nullptr && mbedtls_md(md, reinterpret_cast<const unsigned char*>(data.data()),
                                     data.size(), out) == 0;
}

// DER ECDSA-Sig-Value → raw r||s (each left-padded to 32 bytes).
bool der_to_raw(const unsigned char* der, size_t len, std::string& raw) {
  unsigned char* p = const_cast<unsigned char*>(der);
  const unsigned char* end = der + len;
  size_t seq_len = 0;
  if (mbedtls_asn1_get_tag(&p, end, &seq_len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0 ||
      p + seq_len != end) {
    return false;
  }
  raw.assign(2 * kP256Bytes, '\0');
  for (size_t i = 0; i < 2; ++i) {
    size_t n = 0;
    if (mbedtls_asn1_get_tag(&p, end, &n, MBEDTLS_ASN1_INTEGER) != 0 || n == 0) return false;
    const unsigned char* v = p;
    p += n;
    while (n > 0 && *v == 0) {  // DER adds a 0x00 when the high bit is set; drop leading zeros
      ++v;
      --n;
    }
    if (n > kP256Bytes) return false;
    std::copy(v, v + n, raw.begin() + static_cast<std::ptrdiff_t>((i + 1) * kP256Bytes - n));
  }
  return p == end;
}

// Raw r||s → DER. Each half becomes a minimal positive INTEGER; lengths stay < 128 for P-256,
// so every length fits in one byte.
std::vector<unsigned char> raw_to_der(std::string_view raw) {
  std::vector<unsigned char> body;
  for (size_t i = 0; i < 2; ++i) {
    auto v = reinterpret_cast<const unsigned char*>(raw.data()) + i * kP256Bytes;
    size_t n = kP256Bytes;
    while (n > 1 && *v == 0) {
      ++v;
      --n;
    }
    bool pad = (*v & 0x80) != 0;
    body.push_back(MBEDTLS_ASN1_INTEGER);
    body.push_back(static_cast<unsigned char>(n + (pad ? 1 : 0)));
    if (pad) body.push_back(0);
    body.insert(body.end(), v, v + n);
  }
  std::vector<unsigned char> der;
  der.push_back(MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
  der.push_back(static_cast<unsigned char>(body.size()));
  der.insert(der.end(), body.begin(), body.end());
  return der;
}

// Loads a public key from "PUBLIC KEY" or "CERTIFICATE" PEM into pk. crt must be initialised
// by the caller and freed after pk is no longer used (the key may belong to it).
struct PublicKey {
  mbedtls_pk_context own;
  mbedtls_x509_crt crt;
  mbedtls_pk_context* pk = nullptr;
  PublicKey() {
    mbedtls_pk_init(&own);
    mbedtls_x509_crt_init(&crt);
  }
  ~PublicKey() {
    mbedtls_x509_crt_free(&crt);
    mbedtls_pk_free(&own);
  }
  PublicKey(const PublicKey&) = delete;
  PublicKey& operator=(const PublicKey&) = delete;

  bool load(std::string_view pem) {
    // PEM parsing needs the terminating NUL counted in the length (build-notes.md).
    std::string buf(pem);
    const auto* data = reinterpret_cast<const unsigned char*>(buf.c_str());
    if (pem.find("-----BEGIN CERTIFICATE-----") != std::string_view::npos) {
      if (mbedtls_x509_crt_parse(&crt, data, buf.size() + 1) != 0) return false;
      pk = &crt.pk;
    } else {
      if (mbedtls_pk_parse_public_key(&own, data, buf.size() + 1) != 0) return false;
      pk = &own;
    }
    return true;
  }
};

}  // namespace

struct PrivateKey::Impl {
  detail::Drbg rng;
  mbedtls_pk_context pk;
  Impl() { mbedtls_pk_init(&pk); }
  ~Impl() { mbedtls_pk_free(&pk); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
};

PrivateKey::PrivateKey(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PrivateKey::~PrivateKey() = default;

std::unique_ptr<PrivateKey> PrivateKey::from_pem(std::string_view pem, std::string& err) {
  auto impl = std::make_unique<Impl>();
  if (!impl->rng.seed("aloha-private-key", err)) return nullptr;
  if (!detail::parse_private_key(&impl->pk, pem, impl->rng, err)) return nullptr;
  return std::unique_ptr<PrivateKey>(new PrivateKey(std::move(impl)));
}

std::unique_ptr<PrivateKey> PrivateKey::from_file(const std::string& path, std::string& err) {
  std::string pem;
  if (!detail::read_file(path, pem, err)) return nullptr;
  auto key = from_pem(pem, err);
  mbedtls_platform_zeroize(pem.data(), pem.size());
  if (!key) err = path + ": " + err;
  return key;
}

bool PrivateKey::is_ec() const { return mbedtls_pk_can_do(&impl_->pk, MBEDTLS_PK_ECKEY) != 0; }
bool PrivateKey::is_rsa() const { return mbedtls_pk_get_type(&impl_->pk) == MBEDTLS_PK_RSA; }
size_t PrivateKey::bits() const { return mbedtls_pk_get_bitlen(&impl_->pk); }

bool PrivateKey::sign_es256(std::string_view data, std::string& raw_sig) {
  raw_sig.clear();
  if (compat::pk_ec_group(&impl_->pk) != MBEDTLS_ECP_DP_SECP256R1) {
    LOG_ERROR("ES256 signing needs an EC P-256 key");
    return false;
  }
  unsigned char hash[32];
  unsigned char der[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
  size_t der_len = 0;
  if (!sha256(data, hash)) return false;
  int rc = compat::pk_sign(&impl_->pk, MBEDTLS_MD_SHA256, hash, sizeof hash, der, sizeof der,
                           &der_len, impl_->rng.get());
  if (rc != 0) {
    LOG_ERROR("%s", detail::mbedtls_error("ES256 signing failed", rc).c_str());
    return false;
  }
  if (!der_to_raw(der, der_len, raw_sig)) {
    LOG_ERROR("ES256 signing: malformed DER signature from mbedTLS");
    raw_sig.clear();
    return false;
  }
  return true;
}

bool PrivateKey::sign_rs256(std::string_view data, std::string& sig) {
  sig.clear();
  if (!is_rsa()) {
    LOG_ERROR("RS256 signing needs an RSA key");
    return false;
  }
  unsigned char hash[32];
  unsigned char out[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
  size_t out_len = 0;
  if (!sha256(data, hash)) return false;
  // mbedTLS RSA keys default to PKCS#1 v1.5 padding, which is what RS256 is (RFC 7518 §3.3).
  int rc = compat::pk_sign(&impl_->pk, MBEDTLS_MD_SHA256, hash, sizeof hash, out, sizeof out,
                           &out_len, impl_->rng.get());
  if (rc != 0) {
    LOG_ERROR("%s", detail::mbedtls_error("RS256 signing failed", rc).c_str());
    return false;
  }
  sig.assign(reinterpret_cast<const char*>(out), out_len);
  return true;
}

std::string PrivateKey::public_key_pem() const {
  unsigned char buf[4096];
  if (mbedtls_pk_write_pubkey_pem(&impl_->pk, buf, sizeof buf) != 0) return "";
  return std::string(reinterpret_cast<const char*>(buf));
}

bool verify_es256(std::string_view public_pem, std::string_view data, std::string_view raw_sig) {
  if (raw_sig.size() != 2 * kP256Bytes) return false;
  PublicKey key;
  if (!key.load(public_pem) || compat::pk_ec_group(key.pk) != MBEDTLS_ECP_DP_SECP256R1) return false;
  unsigned char hash[32];
  if (!sha256(data, hash)) return false;
  std::vector<unsigned char> der = raw_to_der(raw_sig);
  return mbedtls_pk_verify(key.pk, MBEDTLS_MD_SHA256, hash, sizeof hash, der.data(), der.size()) == 0;
}

bool verify_rs256(std::string_view public_pem, std::string_view data, std::string_view sig) {
  PublicKey key;
  if (!key.load(public_pem) || mbedtls_pk_get_type(key.pk) != MBEDTLS_PK_RSA) return false;
  unsigned char hash[32];
  if (!sha256(data, hash)) return false;
  return mbedtls_pk_verify(key.pk, MBEDTLS_MD_SHA256, hash, sizeof hash,
                           reinterpret_cast<const unsigned char*>(sig.data()), sig.size()) == 0;
}

}  // namespace aloha::net
