// TLS engine and JWS key helpers: two TlsSessions back to back in memory (no sockets), using the
// committed test PKI in tests/data/tls (regenerate with tools/make-test-ca.sh).
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>

#include <mbedtls/asn1.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/bignum.h>
#include <mbedtls/pk.h>
#include <sys/stat.h>

#include "net/mbedtls_compat.h"
#include "net/pk.h"
#include "net/tls.h"
#include "tls_test_support.h"

using aloha::net::PrivateKey;
using aloha::net::TlsContext;
using aloha::net::TlsSession;
using aloha::net::TlsStatus;
using aloha::test::make_client;
using aloha::test::make_server;
using aloha::test::pattern;
using aloha::test::tls_data;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Moves ciphertext between two sessions (in chunks of `chunk` bytes; 0 = whatever is pending)
// and collects each side's decrypted plaintext, until nothing moves any more.
struct Pipe {
  Pipe(TlsSession& x, TlsSession& y) : a(x), b(y) {}
  TlsSession& a;
  TlsSession& b;
  std::string a_plain, b_plain;
  size_t chunk = 0;

  // Moves from's pending ciphertext into to; with a chunk size, to reads after every chunk.
  bool move(TlsSession& from, TlsSession& to, std::string& to_plain) {
    if (from.pending_output() == 0) return false;
    std::string buf;
    from.take_output(buf);
    size_t step = chunk == 0 ? buf.size() : chunk;
    for (size_t off = 0; off < buf.size(); off += step) {
      to.feed(buf.data() + off, std::min(step, buf.size() - off));
      if (chunk != 0) to.read(to_plain);
    }
    return true;
  }

  void run(int max_rounds = 100000) {
    for (int i = 0; i < max_rounds; ++i) {
      a.read(a_plain);
      b.read(b_plain);
      bool moved = move(a, b, b_plain);
      moved = move(b, a, a_plain) || moved;
      if (!moved) return;
    }
    FAIL("pipe did not settle");
  }
};

}  // namespace

TEST_SUITE("tls") {

TEST_CASE("tls: handshake negotiates ALPN h2 and verifies the server certificate") {
  auto cctx = make_client();
  auto sctx = make_server();
  TlsSession c(*cctx, "localhost");
  TlsSession s(*sctx);
  CHECK_FALSE(c.handshake_done());
  CHECK(c.handshake() == TlsStatus::want_io);
  CHECK(c.pending_output() > 0);  // the ClientHello
  Pipe p{c, s};
  p.run();
  INFO(c.error(), " / ", s.error());
  REQUIRE(c.handshake_done());
  REQUIRE(s.handshake_done());
  CHECK(c.handshake() == TlsStatus::ok);
  CHECK(c.alpn() == "h2");
  CHECK(s.alpn() == "h2");
  CHECK(c.peer_certificate_verified());
  CHECK_FALSE(s.peer_certificate_verified());  // no client CA configured
  CHECK(c.protocol_version().rfind("TLSv1.", 0) == 0);
  CHECK(c.protocol_version() != "TLSv1.0");
  CHECK(c.protocol_version() != "TLSv1.1");
  CHECK(c.cipher_suite().find("GCM") != std::string::npos);
  CHECK(c.error().empty());
}

TEST_CASE("tls: ALPN falls back to http/1.1 when the server does not offer h2") {
  TlsContext::ClientOptions co;
  co.alpn = {"h2", "http/1.1"};
  auto cctx = make_client(co);
  TlsContext::ServerOptions so;
  so.alpn = {"http/1.1"};
  auto sctx = make_server(so);
  TlsSession c(*cctx, "localhost");
  TlsSession s(*sctx);
  Pipe p{c, s};
  p.run();
  REQUIRE(c.handshake_done());
  CHECK(c.alpn() == "http/1.1");
  CHECK(s.alpn() == "http/1.1");
}

TEST_CASE("tls: data flows both ways, including 1 MB in each direction") {
  auto cctx = make_client();
  auto sctx = make_server();
  TlsSession c(*cctx, "localhost");
  TlsSession s(*sctx);
  // Written before the handshake: queued, then sent once it completes.
  CHECK(c.write("hello server") == TlsStatus::want_io);
  CHECK(c.pending_plaintext() == 12);
  Pipe p{c, s};
  p.run();
  REQUIRE(c.handshake_done());
  CHECK(c.pending_plaintext() == 0);
  CHECK(p.b_plain == "hello server");

  CHECK(s.write("hello client") == TlsStatus::ok);
  p.run();
  CHECK(p.a_plain == "hello client");

  p.a_plain.clear();
  p.b_plain.clear();
  const std::string up = pattern(1 << 20, 1), down = pattern(1 << 20, 2);
  REQUIRE(c.write(up) == TlsStatus::ok);
  REQUIRE(s.write(down) == TlsStatus::ok);
  // Ciphertext is produced only up to the high-water mark; the rest waits in the queue.
  CHECK(c.pending_output() < TlsSession::kOutputHighWater + 20000);
  CHECK(c.pending_plaintext() > 0);
  p.run();
  CHECK_FALSE(c.failed());
  CHECK_FALSE(s.failed());
  CHECK(p.b_plain.size() == up.size());
  CHECK(p.b_plain == up);
  CHECK(p.a_plain == down);
  // The 1 MB queues drained: their capacity went back instead of staying pinned.
  CHECK(c.buffer_capacity() <= 2 * TlsSession::kKeepCapacity);
  CHECK(s.buffer_capacity() <= 2 * TlsSession::kKeepCapacity);
}

TEST_CASE("tls: feeding ciphertext one byte at a time works for handshake and data") {
  auto cctx = make_client();
  auto sctx = make_server();
  TlsSession c(*cctx, "localhost");
  TlsSession s(*sctx);
  c.write("byte by byte");
  Pipe p{c, s};
  p.chunk = 1;
  p.run();
  REQUIRE(c.handshake_done());
  REQUIRE(s.handshake_done());
  CHECK(p.b_plain == "byte by byte");
  const std::string back = pattern(40000, 3);  // spans several 16 KB records
  s.write(back);
  p.run();
  CHECK(p.a_plain == back);
}

TEST_CASE("tls: client rejects a server certificate from an unknown CA") {
  auto cctx = make_client();
  TlsContext::ServerOptions so;
  so.cert_file = tls_data("other-server.crt");
  so.key_file = tls_data("other-server.key");
  auto sctx = make_server(so);
  TlsSession c(*cctx, "localhost");
  TlsSession s(*sctx);
  Pipe p{c, s};
  p.run();
  CHECK(c.failed());
  CHECK_FALSE(c.handshake_done());
  CHECK(c.read(p.a_plain) == TlsStatus::error);
  CHECK(c.error().find("certificate verify failed") != std::string::npos);
  CHECK(c.error().find("trusted CA") != std::string::npos);
  CHECK_FALSE(c.peer_certificate_verified());
  CHECK(s.failed());  // the client's fatal alert reached the server
}

TEST_CASE("tls: client rejects a certificate whose name does not match the hostname") {
  auto cctx = make_client();
  auto sctx = make_server();
  TlsSession c(*cctx, "push.example.com");
  TlsSession s(*sctx);
  Pipe p{c, s};
  p.run();
  CHECK(c.failed());
  INFO(c.error());
  CHECK(c.error().find("certificate verify failed") != std::string::npos);
  CHECK(c.error().find("CN") != std::string::npos);
}

TEST_CASE("tls: verify=false accepts an unknown CA but does not claim verification") {
  TlsContext::ClientOptions co;
  co.verify = false;
  co.ca_file = "/nonexistent";  // not loaded when not verifying
  std::string err;
  auto cctx = TlsContext::client(co, err);
  REQUIRE_MESSAGE(cctx, err);
  TlsContext::ServerOptions so;
  so.cert_file = tls_data("other-server.crt");
  so.key_file = tls_data("other-server.key");
  auto sctx = make_server(so);
  TlsSession c(*cctx, "localhost");
  TlsSession s(*sctx);
  Pipe p{c, s};
  p.run();
  REQUIRE(c.handshake_done());
  CHECK_FALSE(c.peer_certificate_verified());
}

TEST_CASE("tls: a verifying client session without a hostname fails up front") {
  auto cctx = make_client();
  TlsSession c(*cctx, "");
  CHECK(c.failed());
  CHECK(c.handshake() == TlsStatus::error);
  CHECK(c.error().find("hostname") != std::string::npos);
}

TEST_CASE("tls: server requiring a client certificate verifies it") {
  TlsContext::ServerOptions so;
  so.client_ca_file = tls_data("ca.crt");
  auto sctx = make_server(so);
  CHECK(sctx->verifies_peer());

  SUBCASE("client with a certificate from the CA is accepted") {
    TlsContext::ClientOptions co;
    co.cert_file = tls_data("client.crt");
    co.key_file = tls_data("client.key");
    auto cctx = make_client(co);
    TlsSession c(*cctx, "localhost");
    TlsSession s(*sctx);
    c.write("authenticated");
    Pipe p{c, s};
    p.run();
    INFO(c.error(), " / ", s.error());
    REQUIRE(s.handshake_done());
    CHECK(s.peer_certificate_verified());
    CHECK(c.peer_certificate_verified());
    CHECK(p.b_plain == "authenticated");
  }
  SUBCASE("client without a certificate is refused") {
    auto cctx = make_client();
    TlsSession c(*cctx, "localhost");
    TlsSession s(*sctx);
    Pipe p{c, s};
    p.run();
    CHECK(s.failed());
    CHECK_FALSE(s.handshake_done());
    CHECK_FALSE(s.error().empty());
    CHECK_FALSE(s.peer_certificate_verified());
  }
  SUBCASE("client certificate from another CA is refused") {
    TlsContext::ClientOptions co;
    co.cert_file = tls_data("other-server.crt");
    co.key_file = tls_data("other-server.key");
    auto cctx = make_client(co);
    TlsSession c(*cctx, "localhost");
    TlsSession s(*sctx);
    Pipe p{c, s};
    p.run();
    CHECK(s.failed());
    INFO(s.error());
    CHECK(s.error().find("certificate verify failed") != std::string::npos);
  }
}

TEST_CASE("tls: garbage input fails the session without crashing") {
  auto cctx = make_client();
  auto sctx = make_server();
  const std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n" + pattern(3000, 9);

  SUBCASE("server receiving garbage instead of a ClientHello") {
    TlsSession s(*sctx);
    REQUIRE(s.feed(junk.data(), junk.size()));
    std::string out;
    CHECK(s.read(out) == TlsStatus::error);
    CHECK(s.failed());
    CHECK_FALSE(s.error().empty());
    CHECK(out.empty());
    CHECK_FALSE(s.feed("x", 1));  // a failed session takes no more input
    CHECK(s.write("y") == TlsStatus::error);
  }
  SUBCASE("client receiving garbage after its ClientHello") {
    TlsSession c(*cctx, "localhost");
    c.handshake();
    REQUIRE(c.feed(junk.data(), junk.size()));
    std::string out;
    CHECK(c.read(out) == TlsStatus::error);
    CHECK_FALSE(c.error().empty());
  }
  SUBCASE("a flipped bit in an application record is detected") {
    TlsSession c(*cctx, "localhost");
    TlsSession s(*sctx);
    Pipe p{c, s};
    p.run();
    REQUIRE(s.handshake_done());
    c.write("integrity matters");
    std::string rec;
    c.take_output(rec);
    REQUIRE(rec.size() > 20);
    rec[rec.size() - 3] ^= 0x01;
    s.feed(rec.data(), rec.size());
    std::string out;
    CHECK(s.read(out) == TlsStatus::error);
    CHECK(out.empty());
  }
}

TEST_CASE("tls: buffer bounds are enforced with a clear error") {
  auto cctx = make_client();
  SUBCASE("input") {
    TlsSession c(*cctx, "localhost");
    std::string big(TlsSession::kMaxInput, 'x');
    CHECK(c.feed(big.data(), big.size()));
    CHECK_FALSE(c.feed("x", 1));
    CHECK(c.failed());
    CHECK(c.error().find("limit") != std::string::npos);
  }
  SUBCASE("queued plaintext") {
    TlsSession c(*cctx, "localhost");  // handshake not done: everything queues
    std::string big(TlsSession::kMaxPendingPlaintext, 'x');
    CHECK(c.write(big) == TlsStatus::want_io);
    CHECK(c.write_capacity() == 0);
    CHECK(c.write("y") == TlsStatus::error);
    CHECK(c.error().find("limit") != std::string::npos);
  }
}

TEST_CASE("tls: close_notify reaches the peer and ends writing") {
  auto cctx = make_client();
  auto sctx = make_server();
  TlsSession c(*cctx, "localhost");
  TlsSession s(*sctx);
  Pipe p{c, s};
  p.run();
  REQUIRE(c.handshake_done());
  // More than the output high-water mark, so part of it is still queued as plaintext when
  // close_notify() is called: all of it must still precede the alert.
  const std::string last = pattern(TlsSession::kOutputHighWater * 3, 4);
  c.write(last);
  REQUIRE(c.pending_plaintext() > 0);
  CHECK(c.close_notify() == TlsStatus::ok);
  CHECK(c.pending_plaintext() == 0);
  CHECK_FALSE(s.peer_closed());
  p.run();
  CHECK(p.b_plain == last);
  CHECK(s.peer_closed());
  CHECK_FALSE(s.failed());
  CHECK(c.write("more") == TlsStatus::error);
}

TEST_CASE("tls: context loading reports missing files and mismatched keys") {
  std::string err;
  TlsContext::ClientOptions co;
  co.ca_file = "/nonexistent/ca.crt";
  CHECK_FALSE(TlsContext::client(co, err));
  CHECK(err.find("/nonexistent/ca.crt") != std::string::npos);

  TlsContext::ServerOptions so;
  so.cert_file = tls_data("server.crt");
  so.key_file = tls_data("client.key");
  err.clear();
  CHECK_FALSE(TlsContext::server(so, err));
  CHECK(err.find("does not match") != std::string::npos);

  so.key_file = tls_data("server.key");
  so.alpn = {std::string(256, 'a')};
  err.clear();
  CHECK_FALSE(TlsContext::server(so, err));
  CHECK(err.find("ALPN") != std::string::npos);

  TlsContext::ClientOptions sys;  // empty ca_file: the system bundle
  err.clear();
  if (aloha::test::file_exists("/etc/ssl/certs/ca-certificates.crt")) CHECK_MESSAGE(TlsContext::client(sys, err), err);
}

// --- JWS keys -----------------------------------------------------------------------------

TEST_CASE("tls: ES256 signs a raw 64-byte r||s that verifies, and rejects changes") {
  std::string err;
  auto key = PrivateKey::from_file(tls_data("apns-key.p8"), err);
  REQUIRE_MESSAGE(key, err);
  CHECK(key->is_ec());
  CHECK_FALSE(key->is_rsa());
  CHECK(key->bits() == 256);
  const std::string pub = slurp(tls_data("apns-key.pub.pem"));
  const std::string msg = "eyJhbGciOiJFUzI1NiIsImtpZCI6IkFCQzEyMzQ1NjcifQ.eyJpc3MiOiJERUYxMjM0NTY3In0";
  std::string sig;
  REQUIRE(key->sign_es256(msg, sig));
  CHECK(sig.size() == 64);
  CHECK(aloha::net::verify_es256(pub, msg, sig));
  CHECK(aloha::net::verify_es256(key->public_key_pem(), msg, sig));
  CHECK_FALSE(aloha::net::verify_es256(pub, msg + "x", sig));
  std::string bad = sig;
  bad[40] ^= 0x20;
  CHECK_FALSE(aloha::net::verify_es256(pub, msg, bad));
  CHECK_FALSE(aloha::net::verify_es256(pub, msg, sig.substr(0, 63)));
  // Another key's public half does not verify it; an RSA key cannot make ES256.
  CHECK_FALSE(aloha::net::verify_es256(slurp(tls_data("ca.crt")), msg, sig));
  auto rsa = PrivateKey::from_file(tls_data("fcm-key.pem"), err);
  REQUIRE(rsa);
  std::string none;
  CHECK_FALSE(rsa->sign_es256(msg, none));
  CHECK(none.empty());
}

TEST_CASE("tls: ES256 raw signatures agree with DER signatures made elsewhere") {
  // openssl-made DER signature (tools/make-test-ca.sh) → raw via mbedTLS bignums → our verify.
  const std::string der = slurp(tls_data("apns-key.es256.der"));
  const std::string msg = slurp(tls_data("sig-input.txt"));
  REQUIRE(der.size() > 8);
  auto* p = reinterpret_cast<unsigned char*>(const_cast<char*>(der.data()));
  const unsigned char* end = p + der.size();
  size_t len = 0;
  REQUIRE(mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) == 0);
  mbedtls_mpi r, s;
  mbedtls_mpi_init(&r);
  mbedtls_mpi_init(&s);
  REQUIRE(mbedtls_asn1_get_mpi(&p, end, &r) == 0);
  REQUIRE(mbedtls_asn1_get_mpi(&p, end, &s) == 0);
  unsigned char raw[64];
  REQUIRE(mbedtls_mpi_write_binary(&r, raw, 32) == 0);
  REQUIRE(mbedtls_mpi_write_binary(&s, raw + 32, 32) == 0);
  mbedtls_mpi_free(&r);
  mbedtls_mpi_free(&s);
  const std::string raw_sig(reinterpret_cast<char*>(raw), 64);
  const std::string pub = slurp(tls_data("apns-key.pub.pem"));
  CHECK(aloha::net::verify_es256(pub, msg, raw_sig));
  CHECK_FALSE(aloha::net::verify_es256(pub, msg + ".", raw_sig));

  // And our raw output, re-encoded with mbedTLS's own ASN.1 writer, verifies with mbedtls_pk.
  std::string err;
  auto key = PrivateKey::from_file(tls_data("apns-key.p8"), err);
  REQUIRE(key);
  for (int i = 0; i < 20; ++i) {  // several signatures: r or s with a high bit / leading zero
    const std::string m = msg + std::to_string(i);
    std::string sig;
    REQUIRE(key->sign_es256(m, sig));
    REQUIRE(sig.size() == 64);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    mbedtls_mpi_read_binary(&r, reinterpret_cast<const unsigned char*>(sig.data()), 32);
    mbedtls_mpi_read_binary(&s, reinterpret_cast<const unsigned char*>(sig.data()) + 32, 32);
    unsigned char buf[80];
    unsigned char* w = buf + sizeof buf;
    int n = mbedtls_asn1_write_mpi(&w, buf, &s);
    n += mbedtls_asn1_write_mpi(&w, buf, &r);
    n += mbedtls_asn1_write_len(&w, buf, static_cast<size_t>(n));
    n += mbedtls_asn1_write_tag(&w, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    std::string pem = pub;
    REQUIRE(mbedtls_pk_parse_public_key(&pk, reinterpret_cast<const unsigned char*>(pem.c_str()),
                                        pem.size() + 1) == 0);
    unsigned char hash[32];
    mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
               reinterpret_cast<const unsigned char*>(m.data()), m.size(), hash);
    CHECK(mbedtls_pk_verify(&pk, MBEDTLS_MD_SHA256, hash, 32, w, static_cast<size_t>(n)) == 0);
    mbedtls_pk_free(&pk);
  }
}

TEST_CASE("tls: RS256 matches openssl's PKCS#1 v1.5 signature and verifies") {
  std::string err;
  // The service-account JSON carries the same key; loading it from memory is what FCM does.
  const std::string pem = slurp(tls_data("fcm-key.pem"));
  auto key = PrivateKey::from_pem(pem, err);
  REQUIRE_MESSAGE(key, err);
  CHECK(key->is_rsa());
  CHECK_FALSE(key->is_ec());
  CHECK(key->bits() == 2048);
  const std::string msg = slurp(tls_data("sig-input.txt"));
  std::string sig;
  REQUIRE(key->sign_rs256(msg, sig));
  CHECK(sig.size() == 256);
  CHECK(sig == slurp(tls_data("fcm-key.rs256.sig")));  // deterministic padding: byte-equal
  const std::string pub = slurp(tls_data("fcm-key.pub.pem"));
  CHECK(aloha::net::verify_rs256(pub, msg, sig));
  CHECK_FALSE(aloha::net::verify_rs256(pub, msg + " ", sig));
  std::string bad = sig;
  bad[100] ^= 0x01;
  CHECK_FALSE(aloha::net::verify_rs256(pub, msg, bad));
  CHECK_FALSE(aloha::net::verify_rs256(slurp(tls_data("apns-key.pub.pem")), msg, sig));
  auto ec = PrivateKey::from_file(tls_data("apns-key.p8"), err);
  REQUIRE(ec);
  std::string none;
  CHECK_FALSE(ec->sign_rs256(msg, none));
}

TEST_CASE("tls: private key loading rejects junk and names the file") {
  std::string err;
  CHECK_FALSE(PrivateKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", err));
  CHECK_FALSE(err.empty());
  err.clear();
  CHECK_FALSE(PrivateKey::from_file("/nonexistent/key.p8", err));
  CHECK(err.find("/nonexistent/key.p8") != std::string::npos);
  CHECK_FALSE(aloha::net::verify_es256("not a key", "m", std::string(64, 'a')));
  CHECK_FALSE(aloha::net::verify_rs256("", "m", "s"));
}

}  // TEST_SUITE("tls")
