// TLS engine on mbedTLS with memory BIOs. See tls.h for the driving contract.
#include "net/tls.h"

#include <climits>
#include <cstring>

#include "core/log.h"
#include "net/mbedtls_compat.h"
#include "net/tls_util.h"

namespace aloha::net {

namespace {

constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";

// ECDHE (forward secrecy) + AEAD only. APNs and FCM both negotiate ECDHE-*-AES-GCM over
// TLS 1.2 (upstreams.md); CBC and static-RSA suites that Debian's 2.28 still enables are left out.
// In 3.x this list also governs TLS 1.3, so its suites are listed first when compiled in
// (build-notes.md). Unsupported ids are skipped by mbedTLS.
const int kCipherSuites[] = {
#if defined(MBEDTLS_TLS1_3_AES_128_GCM_SHA256)
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
    MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
#endif
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

// Joins mbedtls_x509_crt_verify_info() lines ("  ! The certificate ...\n") into one line.
std::string verify_flags_text(uint32_t flags) {
  char buf[1024];
  int n = mbedtls_x509_crt_verify_info(buf, sizeof buf, "", flags);
  std::string out;
  if (n <= 0) return "unknown reason";
  for (int i = 0; i < n && buf[i] != '\0'; ++i) {
    if (buf[i] == '\n') {
      if (i + 1 < n && buf[i + 1] != '\0') out += "; ";
    } else {
      out += buf[i];
    }
  }
  return out;
}

bool load_cert_file(mbedtls_x509_crt* crt, const std::string& path, bool allow_partial,
                    std::string& err) {
  int rc = mbedtls_x509_crt_parse_file(crt, path.c_str());
  // A positive result counts certificates that failed to parse; the system bundle may hold a
  // few mbedTLS cannot read, which is fine as long as the rest loaded.
  if (rc < 0) {
    err = detail::mbedtls_error("cannot load certificates from " + path, rc);
    return false;
  }
  if (rc > 0 && !allow_partial) {
    err = "cannot load certificates from " + path + ": " + std::to_string(rc) +
          " certificate(s) failed to parse";
    return false;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
struct TlsContext::Impl {
  bool server = false;
  bool verify = false;
  detail::Drbg rng;
  mbedtls_ssl_config conf;
  mbedtls_x509_crt ca;  // client: server trust anchors; server: client-certificate CA
  mbedtls_x509_crt own_cert;
  mbedtls_pk_context own_key;
  // mbedTLS keeps the pointer array, so both vectors live as long as conf.
  std::vector<std::string> alpn;
  std::vector<const char*> alpn_ptrs;

  Impl() {
    mbedtls_ssl_config_init(&conf);
    mbedtls_x509_crt_init(&ca);
    mbedtls_x509_crt_init(&own_cert);
    mbedtls_pk_init(&own_key);
  }
  ~Impl() {
    mbedtls_ssl_config_free(&conf);
    mbedtls_pk_free(&own_key);
    mbedtls_x509_crt_free(&own_cert);
    mbedtls_x509_crt_free(&ca);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  bool setup(bool is_server, const std::vector<std::string>& protocols, std::string& err) {
    server = is_server;
    if (!rng.seed(is_server ? "aloha-tls-server" : "aloha-tls-client", err)) return false;
    int rc = mbedtls_ssl_config_defaults(
        &conf, is_server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
        MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) {
      err = detail::mbedtls_error("TLS configuration", rc);
      return false;
    }
    mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, rng.get());
    compat::conf_min_tls12(&conf);
    mbedtls_ssl_conf_ciphersuites(&conf, kCipherSuites);
    for (const auto& p : protocols) {
      // RFC 7301 §3.1: protocol names are 1..255 bytes.
      if (p.empty() || p.size() > 255) {
        err = "invalid ALPN protocol name '" + p + "'";
        return false;
      }
    }
    if (!protocols.empty()) {
      alpn = protocols;
      for (const auto& p : alpn) alpn_ptrs.push_back(p.c_str());
      alpn_ptrs.push_back(nullptr);
      rc = mbedtls_ssl_conf_alpn_protocols(&conf, alpn_ptrs.data());
      if (rc != 0) {
        err = detail::mbedtls_error("ALPN configuration", rc);
        return false;
      }
    }
    return true;
  }

  bool load_own(const std::string& cert_file, const std::string& key_file, std::string& err) {
    if (!load_cert_file(&own_cert, cert_file, false, err)) return false;
    std::string pem;
    if (!detail::read_file(key_file, pem, err)) return false;
    bool ok = detail::parse_private_key(&own_key, pem, rng, err);
    mbedtls_platform_zeroize(pem.data(), pem.size());
    if (!ok) {
      err = key_file + ": " + err;
      return false;
    }
    int rc = compat::pk_check_pair(&own_cert.pk, &own_key, rng.get());
    if (rc != 0) {
      err = "private key " + key_file + " does not match certificate " + cert_file;
      return false;
    }
    rc = mbedtls_ssl_conf_own_cert(&conf, &own_cert, &own_key);
    if (rc != 0) {
      err = detail::mbedtls_error("TLS certificate configuration", rc);
      return false;
    }
    return true;
  }
};

TlsContext::TlsContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsContext::~TlsContext() = default;

bool TlsContext::is_server() const { return impl_->server; }
bool TlsContext::verifies_peer() const { return impl_->verify; }

std::unique_ptr<TlsContext> TlsContext::client(const ClientOptions& opts, std::string& err) {
  auto impl = std::make_unique<Impl>();
  if (!impl->setup(false, opts.alpn, err)) return nullptr;
  impl->verify = opts.verify;
  if (opts.verify) {
    const std::string ca = opts.ca_file.empty() ? std::string(kSystemCaBundle) : opts.ca_file;
    if (!load_cert_file(&impl->ca, ca, opts.ca_file.empty(), err)) return nullptr;
    mbedtls_ssl_conf_ca_chain(&impl->conf, &impl->ca, nullptr);
    mbedtls_ssl_conf_authmode(&impl->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
  } else {
    mbedtls_ssl_conf_authmode(&impl->conf, MBEDTLS_SSL_VERIFY_NONE);
  }
  if (opts.cert_file.empty() != opts.key_file.empty()) {
    err = "client certificate needs both cert_file and key_file";
    return nullptr;
  }
  if (!opts.cert_file.empty() && !impl->load_own(opts.cert_file, opts.key_file, err)) {
    return nullptr;
  }
  return std::unique_ptr<TlsContext>(new TlsContext(std::move(impl)));
}

std::unique_ptr<TlsContext> TlsContext::server(const ServerOptions& opts, std::string& err) {
  auto impl = std::make_unique<Impl>();
  if (!impl->setup(true, opts.alpn, err)) return nullptr;
  if (opts.cert_file.empty() || opts.key_file.empty()) {
    err = "TLS server needs cert_file and key_file";
    return nullptr;
  }
  if (!impl->load_own(opts.cert_file, opts.key_file, err)) return nullptr;
  if (!opts.client_ca_file.empty()) {
    if (!load_cert_file(&impl->ca, opts.client_ca_file, false, err)) return nullptr;
    mbedtls_ssl_conf_ca_chain(&impl->conf, &impl->ca, nullptr);
    mbedtls_ssl_conf_authmode(&impl->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    impl->verify = true;
  } else {
    mbedtls_ssl_conf_authmode(&impl->conf, MBEDTLS_SSL_VERIFY_NONE);
  }
  return std::unique_ptr<TlsContext>(new TlsContext(std::move(impl)));
}

// ---------------------------------------------------------------------------------------------
struct TlsSession::Impl {
  const TlsContext::Impl& ctx;
  mbedtls_ssl_context ssl;
  std::string in;  // ciphertext fed, consumed from in_off
  size_t in_off = 0;
  std::string out;    // ciphertext produced, not yet taken
  std::string plain;  // plaintext queued, consumed from plain_off
  size_t plain_off = 0;
  bool hs_done = false;
  bool failed = false;
  bool closing = false;
  bool peer_closed = false;
  bool verified = false;
  std::string err;
  std::string alpn;

  explicit Impl(const TlsContext::Impl& c) : ctx(c) { mbedtls_ssl_init(&ssl); }
  ~Impl() { mbedtls_ssl_free(&ssl); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // BIO trampolines: memory only. The send side always accepts everything (output is bounded
  // by when we encrypt, see flush_plain), so mbedTLS never sees a partial write; the receive
  // side returns WANT_READ when the fed input is exhausted, which makes every mbedTLS call
  // non-blocking (build-notes.md).
  static int bio_send(void* p, const unsigned char* buf, size_t len) noexcept {
    auto* self = static_cast<Impl*>(p);
    if (len > INT_MAX) len = INT_MAX;
    try {
      self->out.append(reinterpret_cast<const char*>(buf), len);
    } catch (...) {
      return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    }
    return static_cast<int>(len);
  }
  static int bio_recv(void* p, unsigned char* buf, size_t len) noexcept {
    auto* self = static_cast<Impl*>(p);
    size_t avail = self->in.size() - self->in_off;
    if (avail == 0) return MBEDTLS_ERR_SSL_WANT_READ;
    size_t n = len < avail ? len : avail;
    if (n > INT_MAX) n = INT_MAX;
    std::memcpy(buf, self->in.data() + self->in_off, n);
    self->in_off += n;
    if (self->in_off == self->in.size()) {
      release_if_drained(self->in);
      self->in_off = 0;
    }
    return static_cast<int>(n);
  }

  // Empties a drained queue, giving its memory back when a burst grew it past kKeepCapacity.
  static void release_if_drained(std::string& buf) {
    if (buf.capacity() > TlsSession::kKeepCapacity) {
      std::string().swap(buf);
    } else {
      buf.clear();
    }
  }

  void fail(std::string text) {
    if (failed) return;
    failed = true;
    err = std::move(text);
    LOG_DEBUG("tls: %s", err.c_str());
  }

  void fail_code(const char* what, int rc) {
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
      fail("certificate verify failed: " + verify_flags_text(mbedtls_ssl_get_verify_result(&ssl)));
    } else {
      fail(detail::mbedtls_error(what, rc));
    }
  }

  static bool is_want(int rc) {
    return rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE;
  }

  TlsStatus status() const {
    if (failed) return TlsStatus::error;
    return hs_done ? TlsStatus::ok : TlsStatus::want_io;
  }

  TlsStatus step_handshake() {
    if (failed) return TlsStatus::error;
    if (hs_done) return TlsStatus::ok;
    int rc = mbedtls_ssl_handshake(&ssl);
    if (is_want(rc)) return TlsStatus::want_io;
    if (rc != 0) {
      fail_code("TLS handshake failed", rc);
      return TlsStatus::error;
    }
    hs_done = true;
    const char* proto = mbedtls_ssl_get_alpn_protocol(&ssl);
    alpn = proto != nullptr ? proto : "";
    verified = ctx.verify && mbedtls_ssl_get_verify_result(&ssl) == 0;
#if defined(MBEDTLS_SSL_KEEP_PEER_CERTIFICATE)
    verified = verified && mbedtls_ssl_get_peer_cert(&ssl) != nullptr;
#endif
    LOG_DEBUG("tls: handshake done (%s, %s, alpn '%s')", mbedtls_ssl_get_version(&ssl),
              mbedtls_ssl_get_ciphersuite(&ssl), alpn.c_str());
    flush_plain(false);
    return status();
  }

  // Encrypts data[0, len) into `out`, record by record, while the output stays below the
  // high-water mark (or all of it when ignore_high_water); returns the bytes taken.
  size_t encrypt(const char* data, size_t len, bool ignore_high_water) {
    size_t off = 0;
    while (!failed && hs_done && off < len && (ignore_high_water || out.size() < TlsSession::kOutputHighWater)) {
      // mbedTLS writes at most one record per call and returns the bytes taken; if it ever
      // returned WANT_*, the same bytes stay at the caller's queue front for the retry it requires.
      int rc = mbedtls_ssl_write(&ssl, reinterpret_cast<const unsigned char*>(data) + off, len - off);
      if (rc > 0) {
        off += static_cast<size_t>(rc);
      } else if (is_want(rc)) {
        break;
      } else {
        fail_code("TLS write failed", rc);
      }
    }
    return off;
  }

  // Encrypts queued plaintext while the output stays below the high-water mark (or all of it
  // when ignore_high_water, used before close_notify so the alert follows the data).
  void flush_plain(bool ignore_high_water) {
    plain_off += encrypt(plain.data() + plain_off, plain.size() - plain_off, ignore_high_water);
    if (plain_off == plain.size()) {
      release_if_drained(plain);
      plain_off = 0;
    } else if (plain_off > (64u << 10) && plain_off * 2 > plain.size()) {
      plain.erase(0, plain_off);
      plain_off = 0;
    }
  }
};

TlsSession::TlsSession(const TlsContext& ctx, std::string_view sni_hostname)
    : impl_(std::make_unique<Impl>(*ctx.impl_)) {
  Impl& s = *impl_;
  int rc = mbedtls_ssl_setup(&s.ssl, &ctx.impl_->conf);
  if (rc != 0) {
    s.fail(detail::mbedtls_error("TLS session setup", rc));
    return;
  }
  if (!ctx.impl_->server) {
    if (!sni_hostname.empty()) {
      // Sets both the SNI extension and the name checked against the certificate.
      rc = mbedtls_ssl_set_hostname(&s.ssl, std::string(sni_hostname).c_str());
      if (rc != 0) {
        s.fail(detail::mbedtls_error("TLS hostname", rc));
        return;
      }
    } else if (ctx.impl_->verify) {
      // Without a name mbedTLS 2.28 would accept any certificate from the trusted CA.
      s.fail("TLS hostname required for certificate verification");
      return;
    }
  }
  mbedtls_ssl_set_bio(&s.ssl, &s, &Impl::bio_send, &Impl::bio_recv, nullptr);
}

TlsSession::~TlsSession() = default;

bool TlsSession::feed(const char* data, size_t len) {
  Impl& s = *impl_;
  if (s.failed) return false;
  if (s.in.size() - s.in_off + len > kMaxInput) {
    s.fail("TLS input buffer limit exceeded");
    return false;
  }
  if (s.in_off > 0 && s.in_off * 2 > s.in.size()) {  // keep the consumed prefix small
    s.in.erase(0, s.in_off);
    s.in_off = 0;
  }
  s.in.append(data, len);
  return true;
}

TlsStatus TlsSession::handshake() { return impl_->step_handshake(); }

TlsStatus TlsSession::write(std::string_view plaintext) {
  Impl& s = *impl_;
  if (s.failed) return TlsStatus::error;
  if (s.closing) {
    s.fail("TLS write after close_notify");
    return TlsStatus::error;
  }
  if (plaintext.size() > write_capacity()) {
    s.fail("TLS plaintext queue limit exceeded");
    return TlsStatus::error;
  }
  if (s.hs_done && s.plain_off == s.plain.size()) {
    // Nothing queued: encrypt straight from the caller's bytes (the common case on the push path)
    // instead of copying every request through the plaintext queue first; only what the
    // high-water mark holds back is queued.
    size_t taken = s.encrypt(plaintext.data(), plaintext.size(), false);
    if (s.failed) return TlsStatus::error;
    if (taken < plaintext.size()) s.plain.append(plaintext.data() + taken, plaintext.size() - taken);
    return s.status();
  }
  s.plain.append(plaintext.data(), plaintext.size());
  s.flush_plain(false);
  return s.status();
}

size_t TlsSession::write_capacity() const {
  size_t pending = pending_plaintext();
  return pending >= kMaxPendingPlaintext ? 0 : kMaxPendingPlaintext - pending;
}

size_t TlsSession::buffer_capacity() const { return impl_->in.capacity() + impl_->plain.capacity(); }

size_t TlsSession::output_capacity() const { return impl_->out.capacity(); }

void TlsSession::release_buffers() {
  Impl& s = *impl_;
  if (s.in_off == s.in.size()) {
    std::string().swap(s.in);
    s.in_off = 0;
  }
  if (s.plain_off == s.plain.size()) {
    std::string().swap(s.plain);
    s.plain_off = 0;
  }
  if (s.out.empty()) std::string().swap(s.out);
}

size_t TlsSession::pending_plaintext() const { return impl_->plain.size() - impl_->plain_off; }

TlsStatus TlsSession::read(std::string& out) {
  Impl& s = *impl_;
  TlsStatus st = s.step_handshake();
  if (st != TlsStatus::ok) return st;
  s.flush_plain(false);
  unsigned char buf[16384];
  while (!s.failed && !s.peer_closed) {
    int rc = mbedtls_ssl_read(&s.ssl, buf, sizeof buf);
    if (rc > 0) {
      out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(rc));
      continue;
    }
    if (rc == 0 || Impl::is_want(rc)) break;  // 0 only on transport EOF, which our BIO never reports
    if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
      s.peer_closed = true;
      break;
    }
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
    if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) continue;  // TLS 1.3 (3.x): not data
#endif
    s.fail_code("TLS read failed", rc);
  }
  mbedtls_platform_zeroize(buf, sizeof buf);
  return s.status();
}

size_t TlsSession::pending_output() const { return impl_->out.size(); }

void TlsSession::take_output(std::string& out) {
  Impl& s = *impl_;
  if (out.empty()) {
    out.swap(s.out);
  } else {
    out.append(s.out);
  }
  s.out.clear();
  s.flush_plain(false);
}

TlsStatus TlsSession::close_notify() {
  Impl& s = *impl_;
  if (s.failed) return TlsStatus::error;
  if (s.closing) return TlsStatus::ok;
  s.closing = true;
  s.flush_plain(true);
  if (s.failed) return TlsStatus::error;
  int rc = mbedtls_ssl_close_notify(&s.ssl);  // no-op before the handshake is over
  if (rc != 0 && !Impl::is_want(rc)) {
    s.fail_code("TLS close_notify failed", rc);
    return TlsStatus::error;
  }
  return TlsStatus::ok;
}

bool TlsSession::handshake_done() const { return impl_->hs_done; }
bool TlsSession::failed() const { return impl_->failed; }
bool TlsSession::peer_closed() const { return impl_->peer_closed; }
const std::string& TlsSession::error() const { return impl_->err; }
const std::string& TlsSession::alpn() const { return impl_->alpn; }
bool TlsSession::peer_certificate_verified() const { return impl_->hs_done && impl_->verified; }

std::string TlsSession::protocol_version() const {
  return impl_->hs_done ? mbedtls_ssl_get_version(&impl_->ssl) : "";
}

std::string TlsSession::cipher_suite() const {
  if (!impl_->hs_done) return "";
  const char* cs = mbedtls_ssl_get_ciphersuite(&impl_->ssl);
  return cs != nullptr ? cs : "";
}

}  // namespace aloha::net
