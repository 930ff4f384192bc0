#include "net/tls_util.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace aloha::net::detail {

Drbg::Drbg() {
  mbedtls_entropy_init(&entropy_);
  mbedtls_ctr_drbg_init(&drbg_);
}

Drbg::~Drbg() {
  mbedtls_ctr_drbg_free(&drbg_);
  mbedtls_entropy_free(&entropy_);
}

bool Drbg::seed(std::string_view personalization, std::string& err) {
  if (compat::crypto_init() != 0) {
    err = "PSA crypto initialisation failed";
    return false;
  }
  int rc = mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_,
                                 reinterpret_cast<const unsigned char*>(personalization.data()),
                                 personalization.size());
  if (rc != 0) {
    err = mbedtls_error("seeding the random generator", rc);
    return false;
  }
  return true;
}

std::string mbedtls_error(std::string_view what, int code) {
  char text[160];
  mbedtls_strerror(code, text, sizeof text);
  char num[16];
  std::snprintf(num, sizeof num, "%s0x%04X", code < 0 ? "-" : "", static_cast<unsigned>(code < 0 ? -code : code));
  std::string s(what);
  s += ": ";
  s += text;
  s += " (";
  s += num;
  s += ")";
  return s;
}

bool read_file(const std::string& path, std::string& out, std::string& err, size_t max_bytes) {
  out.clear();
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    err = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  char buf[8192];
  bool ok = true;
  for (;;) {
    size_t n = std::fread(buf, 1, sizeof buf, f);
    out.append(buf, n);
    if (out.size() > max_bytes) {
      err = path + ": file larger than " + std::to_string(max_bytes) + " bytes";
      ok = false;
      break;
    }
    if (n < sizeof buf) {
      if (std::ferror(f)) {
        err = "cannot read " + path;
        ok = false;
      }
      break;
    }
  }
  std::fclose(f);
  if (!ok) {
    mbedtls_platform_zeroize(out.data(), out.size());
    out.clear();
  }
  return ok;
}

bool parse_private_key(mbedtls_pk_context* pk, std::string_view pem, Drbg& rng, std::string& err) {
  // mbedTLS recognises PEM only when the buffer length includes the terminating NUL
  // (build-notes.md); DER input must be passed without it.
  std::vector<unsigned char> buf(pem.begin(), pem.end());
  bool is_pem = pem.find("-----BEGIN") != std::string_view::npos;
  if (is_pem) buf.push_back('\0');
  int rc = compat::pk_parse_key(pk, buf.data(), buf.size(), rng.get());
  mbedtls_platform_zeroize(buf.data(), buf.size());  // key material: do not leave copies around
  if (rc != 0) {
    err = mbedtls_error("cannot parse private key", rc);
    return false;
  }
  return true;
}

}  // namespace aloha::net::detail
