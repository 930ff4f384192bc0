// Shared by the TLS unit tests: the committed test PKI in tests/data/tls (regenerate with
// tools/make-test-ca.sh) and contexts built from it.
#pragma once
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "net/tls.h"

namespace aloha::test {

inline bool file_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

// ALOHA_TEST_DATA is set by `meson test`; fall back to the usual working directories.
inline std::string tls_data(const std::string& name) {
  std::string base;
  if (const char* d = std::getenv("ALOHA_TEST_DATA")) {
    base = d;
  } else {
    for (const char* cand : {"tests/data", "../tests/data", "../../tests/data"}) {
      if (file_exists(std::string(cand) + "/tls/ca.crt")) {
        base = cand;
        break;
      }
    }
  }
  std::string path = base + "/tls/" + name;
  REQUIRE_MESSAGE(file_exists(path), "missing test data " << path << " (set ALOHA_TEST_DATA)");
  return path;
}

inline std::unique_ptr<net::TlsContext> make_client(net::TlsContext::ClientOptions o = {}) {
  if (o.ca_file.empty()) o.ca_file = tls_data("ca.crt");
  std::string err;
  auto ctx = net::TlsContext::client(o, err);
  REQUIRE_MESSAGE(ctx, err);
  return ctx;
}

inline std::unique_ptr<net::TlsContext> make_server(net::TlsContext::ServerOptions o = {}) {
  if (o.cert_file.empty()) {
    o.cert_file = tls_data("server.crt");
    o.key_file = tls_data("server.key");
  }
  std::string err;
  auto ctx = net::TlsContext::server(o, err);
  REQUIRE_MESSAGE(ctx, err);
  return ctx;
}

// Deterministic pseudo-random bytes (so a corrupted or reordered byte shows).
inline std::string pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  unsigned x = seed;
  for (auto& c : s) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 16);
  }
  return s;
}

}  // namespace aloha::test
