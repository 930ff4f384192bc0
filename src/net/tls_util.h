// Internal helpers shared by the mbedTLS-based files of src/net (tls.cpp, pk.cpp): a seeded
// CTR-DRBG, mbedTLS error text, and a bounded whole-file reader for start-up loading.
// Not part of the public API: include only from src/net/*.cpp.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include "net/mbedtls_compat.h"

namespace aloha::net::detail {

// One entropy source + CTR-DRBG. Not thread-safe (mbedTLS is built without threading); each
// TlsContext / PrivateKey owns one and uses it from one thread. Neither copied nor moved:
// mbedTLS keeps pointers to it.
class Drbg {
 public:
  Drbg();
  ~Drbg();
  Drbg(const Drbg&) = delete;
  Drbg& operator=(const Drbg&) = delete;

  // Seeds from the platform entropy source; personalization separates the streams of
  // different users. false + err on failure.
  bool seed(std::string_view personalization, std::string& err);
  mbedtls_ctr_drbg_context* get() { return &drbg_; }

 private:
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context drbg_;
};

// "<what>: <mbedtls_strerror text> (-0xNNNN)".
std::string mbedtls_error(std::string_view what, int code);

// Reads a whole file (credentials, certificates) of at most max_bytes. Blocking: start-up only.
bool read_file(const std::string& path, std::string& out, std::string& err,
               size_t max_bytes = 1 << 20);

// Parses a private key from PEM or DER held in pem (PEM needs the terminating NUL counted, which
// this adds). false + err on failure.
bool parse_private_key(mbedtls_pk_context* pk, std::string_view pem, Drbg& rng, std::string& err);

}  // namespace aloha::net::detail
