// TLS engine (mbedTLS), sans-I/O: the caller moves ciphertext between a socket and the session
// through memory buffers (feed() / take_output()) and plaintext through write() / read(). Nothing
// here blocks or touches a socket; no callbacks are invoked. TlsContext is loaded at start-up
// and shared read-only by its sessions, which must not outlive it.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace aloha::net {

// Result of driving a session.
//   ok      — no error; nothing is blocked (handshake done, or call succeeded).
//   want_io — handshake still in progress: send pending_output() and feed() what arrives.
//   error   — the session failed for good; error() says why. Send pending_output() once
//             (it may hold a fatal alert for the peer) and close the connection.
enum class TlsStatus { ok, want_io, error };

// Configuration + trust store + RNG, shared by many sessions (one ctr_drbg seeded from entropy
// per context). Immutable after construction; single-threaded use (the loop thread).
class TlsContext {
 public:
  struct ClientOptions {
    std::string ca_file;  // PEM bundle; empty = system bundle /etc/ssl/certs/ca-certificates.crt
    std::string cert_file, key_file;  // optional client certificate (APNs certificate auth), PEM
    std::vector<std::string> alpn = {"h2"};  // offered in order; empty = no ALPN extension
    bool verify = true;  // verify chain + hostname; false only for tests/diagnostics
  };
  struct ServerOptions {
    std::string cert_file, key_file;  // PEM; the cert file may hold the chain (leaf first)
    std::string client_ca_file;       // non-empty: require a client certificate signed by it
    std::vector<std::string> alpn = {"h2", "http/1.1"};  // server preference order
  };

  // Load files and seed the RNG. nullptr + err (naming the file and mbedTLS reason) on failure.
  static std::unique_ptr<TlsContext> client(const ClientOptions& opts, std::string& err);
  static std::unique_ptr<TlsContext> server(const ServerOptions& opts, std::string& err);

  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  bool is_server() const;
  bool verifies_peer() const;  // client: verify option; server: a client CA was configured

  struct Impl;  // mbedTLS state, defined in tls.cpp

 private:
  explicit TlsContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend class TlsSession;
};

// One TLS connection. Typical use from a libuv transport:
//   connect:  s.handshake(); send(s.take_output())
//   on read:  s.feed(buf, n); s.read(plain) → hand plain to nghttp2; send(s.take_output());
//             close on TlsStatus::error or peer_closed()
//   on send:  s.write(nghttp2 bytes); send(s.take_output())
// Plaintext written before the handshake completes is queued and encrypted once it does.
// Bounds: unread ciphertext ≤ kMaxInput, queued plaintext ≤ kMaxPendingPlaintext; exceeding
// either fails the session (error() says which). Ciphertext is produced only while
// pending_output() < kOutputHighWater; take_output() resumes encrypting the queued rest.
class TlsSession {
 public:
  static constexpr size_t kMaxInput = 4u << 20;
  static constexpr size_t kMaxPendingPlaintext = 4u << 20;
  static constexpr size_t kOutputHighWater = 256u << 10;
  // Drained input/plaintext queues keep at most this capacity: a burst does not pin its peak
  // (up to the bounds above) in every session for the connection's lifetime.
  static constexpr size_t kKeepCapacity = 32u << 10;
  // Capacity currently held by the input and plaintext queues (diagnostics and tests).
  size_t buffer_capacity() const;
  // Capacity of the ciphertext output buffer (take_output() hands buffers back and forth, so a
  // stream's reused chunk lives here between writes).
  size_t output_capacity() const;
  // Frees the capacity of whichever of the three queues is drained (an idle connection gives its
  // burst buffers back; mbedTLS's own record buffers stay, they live as long as the session).
  void release_buffers();

  // sni_hostname: client only — sent as SNI and matched against the server certificate (DNS
  // names only: mbedTLS 2.28 cannot match IP addresses). Required when the context verifies.
  // ctx must outlive the session.
  explicit TlsSession(const TlsContext& ctx, std::string_view sni_hostname = {});
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Ciphertext received from the socket (copied). Does not process it: call handshake()/read().
  // false if the session has failed or the input bound is exceeded (then it fails).
  bool feed(const char* data, size_t len);

  // Advances the handshake as far as the fed input allows; on completion also encrypts queued
  // plaintext. ok once done (idempotent), want_io while in progress, error on failure.
  TlsStatus handshake();

  // Queues plaintext for sending; encrypted at once after the handshake, else when it ends.
  // error if the session failed, close_notify() was called, or the plaintext bound is exceeded.
  TlsStatus write(std::string_view plaintext);
  TlsStatus write(const char* data, size_t len) { return write(std::string_view(data, len)); }
  // Bytes write() accepts now without exceeding kMaxPendingPlaintext.
  size_t write_capacity() const;
  size_t pending_plaintext() const;

  // Drives the handshake if needed, then decrypts every complete record fed so far and appends
  // the plaintext to out (until mbedTLS wants more input). want_io while the handshake runs.
  // A close_notify from the peer sets peer_closed() and still returns ok.
  TlsStatus read(std::string& out);

  // Ciphertext to send. take_output() appends it to out (cheap when out is empty: the buffer is
  // handed over) and then encrypts more queued plaintext, so loop while pending_output() > 0 if
  // everything is wanted now.
  size_t pending_output() const;
  void take_output(std::string& out);

  // Queues a close_notify alert (send it with take_output()); later write()s fail.
  TlsStatus close_notify();

  bool handshake_done() const;
  bool failed() const;
  bool peer_closed() const;         // the peer sent close_notify
  const std::string& error() const; // empty unless failed(): mbedTLS text, and for certificate
                                    // failures "certificate verify failed: <flags text>"
  // Negotiated ALPN protocol, empty if none (valid after the handshake).
  const std::string& alpn() const;
  // True after a handshake in which the peer's certificate chain (and, on a client, hostname)
  // was verified against the configured CA. False when verification was off / not requested.
  bool peer_certificate_verified() const;
  // Diagnostics after the handshake, e.g. "TLSv1.2" and "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256".
  std::string protocol_version() const;
  std::string cipher_suite() const;

  struct Impl;  // defined in tls.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace aloha::net
