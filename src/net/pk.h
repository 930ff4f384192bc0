// Private-key signing for JWTs: ES256 (APNs token auth, raw 64-byte r||s as JWS requires,
// RFC 7518 §3.4) and RS256 (Google OAuth service accounts, PKCS#1 v1.5). Plus verification
// helpers used by the mock upstreams and tests. Keys are loaded at start-up; the caller owns them.
#pragma once
#include <memory>
#include <string>
#include <string_view>

namespace aloha::net {

class PrivateKey {
 public:
  // PEM (PKCS#8 "PRIVATE KEY", SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY"; unencrypted)
  // or DER. nullptr + err on failure. from_file reads the file (blocking: start-up only).
  static std::unique_ptr<PrivateKey> from_pem(std::string_view pem, std::string& err);
  static std::unique_ptr<PrivateKey> from_file(const std::string& path, std::string& err);

  ~PrivateKey();
  PrivateKey(const PrivateKey&) = delete;
  PrivateKey& operator=(const PrivateKey&) = delete;

  bool is_ec() const;   // any EC key; sign_es256 additionally needs curve P-256
  bool is_rsa() const;
  size_t bits() const;

  // SHA-256 over data, then sign. Not const: signing draws from the key's own RNG.
  // ES256: raw_sig = r||s, exactly 64 bytes. false if the key is not EC P-256.
  bool sign_es256(std::string_view data, std::string& raw_sig);
  // RS256: RSASSA-PKCS1-v1_5 with SHA-256; sig has the modulus length. false if not RSA.
  bool sign_rs256(std::string_view data, std::string& sig);

  // The matching public key as PEM ("-----BEGIN PUBLIC KEY-----"), empty on failure.
  std::string public_key_pem() const;

  struct Impl;

 private:
  explicit PrivateKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// public_pem: a "PUBLIC KEY" PEM or a "CERTIFICATE" PEM (its key is used). Any parse failure,
// wrong key type or size, or bad signature → false.
bool verify_es256(std::string_view public_pem, std::string_view data, std::string_view raw_sig);
bool verify_rs256(std::string_view public_pem, std::string_view data, std::string_view sig);

}  // namespace aloha::net
