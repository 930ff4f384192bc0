#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include <rapidjson/document.h>

#include "core/encoding.h"
#include "net/pk.h"
#include "push/jwt.h"

namespace {

std::string data_dir() {
  const char* d = std::getenv("ALOHA_TEST_DATA");
  return d ? std::string(d) : std::string("tests/data");
}

std::string read_all(const std::string& path) {
  std::string out;
  FILE* f = fopen(path.c_str(), "rb");
  REQUIRE(f != nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  fclose(f);
  return out;
}

bool b64url_decode(std::string_view in, std::string& out) {
  std::string s(in);
  for (char& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (s.size() % 4) s += '=';
  return aloha::enc::base64_decode(s, out);
}

struct Parts { std::string header, claims, sig, signing_input; };
Parts split(const std::string& jwt) {
  size_t a = jwt.find('.'), b = jwt.rfind('.');
  REQUIRE(a != std::string::npos);
  REQUIRE(b > a);
  Parts p;
  REQUIRE(b64url_decode(std::string_view(jwt).substr(0, a), p.header));
  REQUIRE(b64url_decode(std::string_view(jwt).substr(a + 1, b - a - 1), p.claims));
  REQUIRE(b64url_decode(std::string_view(jwt).substr(b + 1), p.sig));
  p.signing_input = jwt.substr(0, b);
  return p;
}

}  // namespace

TEST_SUITE("jwt") {
  TEST_CASE("apns: the provider token is ES256 over header and claims and verifies with the public key") {
    aloha::FakeClock clock;
    std::string err;
    auto p = aloha::push::ApnsTokenProvider::load(data_dir() + "/tls/apns-key.p8", "ABC123DEFG", "TEAM123456",
                                                  clock, err);
    REQUIRE_MESSAGE(p, err);
    std::string auth = p->authorization();
    REQUIRE(auth.rfind("bearer ", 0) == 0);
    Parts parts = split(auth.substr(7));
    CHECK(parts.header == "{\"alg\":\"ES256\",\"kid\":\"ABC123DEFG\"}");
    rapidjson::Document claims;
    claims.Parse(parts.claims.c_str());
    REQUIRE(claims.IsObject());
    CHECK(std::string(claims["iss"].GetString()) == "TEAM123456");
    CHECK(claims["iat"].GetInt64() == clock.wall_ms() / 1000);
    CHECK(parts.sig.size() == 64);
    std::string pub = read_all(data_dir() + "/tls/apns-key.pub.pem");
    CHECK(aloha::net::verify_es256(pub, parts.signing_input, parts.sig));
    std::string tampered = parts.signing_input;
    tampered[tampered.size() - 2] ^= 1;
    CHECK_FALSE(aloha::net::verify_es256(pub, tampered, parts.sig));
  }

  TEST_CASE("apns: the token is cached and re-minted after 45 minutes, not per request") {
    aloha::FakeClock clock;
    std::string err;
    auto p = aloha::push::ApnsTokenProvider::load(data_dir() + "/tls/apns-key.p8", "ABC123DEFG", "TEAM123456",
                                                  clock, err);
    REQUIRE(p);
    std::string first = p->authorization();
    int mints = p->mint_count();
    for (int i = 0; i < 100; ++i) CHECK(p->authorization() == first);
    clock.advance_ms(44 * 60 * 1000);
    CHECK(p->authorization() == first);
    CHECK(p->mint_count() == mints);
    clock.advance_ms(60 * 1000);
    CHECK(p->authorization() != first);
    CHECK(p->mint_count() == mints + 1);
  }

  TEST_CASE("apns: ExpiredProviderToken re-mints at most once per 20 minutes") {
    aloha::FakeClock clock;
    std::string err;
    auto p = aloha::push::ApnsTokenProvider::load(data_dir() + "/tls/apns-key.p8", "ABC123DEFG", "TEAM123456",
                                                  clock, err);
    REQUIRE(p);
    std::string first = p->authorization();
    CHECK_FALSE(p->expired_by_upstream());  // just minted
    clock.advance_ms(21 * 60 * 1000);
    CHECK(p->expired_by_upstream());
    CHECK(p->authorization() != first);
    CHECK_FALSE(p->expired_by_upstream());
  }

  TEST_CASE("apns: a missing key, an RSA key or malformed ids stop start-up with a message") {
    aloha::FakeClock clock;
    std::string err;
    CHECK_FALSE(aloha::push::ApnsTokenProvider::load(data_dir() + "/tls/missing.p8", "ABC123DEFG", "TEAM123456", clock, err));
    CHECK_FALSE(err.empty());
    err.clear();
    CHECK_FALSE(aloha::push::ApnsTokenProvider::load(data_dir() + "/tls/fcm-key.pem", "ABC123DEFG", "TEAM123456", clock, err));
    CHECK(err.find("P-256") != std::string::npos);
    CHECK_FALSE(aloha::push::ApnsTokenProvider::load(data_dir() + "/tls/apns-key.p8", "short", "TEAM123456", clock, err));
    CHECK_FALSE(aloha::push::ApnsTokenProvider::load(data_dir() + "/tls/apns-key.p8", "ABC123DEFG", "TEAM-12345", clock, err));
  }

  TEST_CASE("rs256: an OAuth assertion verifies with the service account's public key") {
    std::string err;
    auto key = aloha::net::PrivateKey::from_file(data_dir() + "/tls/fcm-key.pem", err);
    REQUIRE_MESSAGE(key, err);
    std::string jwt = aloha::push::sign_jwt(aloha::push::JwtAlg::rs256, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
                                            "{\"iss\":\"x@y\",\"iat\":1}", *key);
    Parts parts = split(jwt);
    CHECK(aloha::net::verify_rs256(read_all(data_dir() + "/tls/fcm-key.pub.pem"), parts.signing_input, parts.sig));
    // An EC key cannot make RS256.
    auto ec = aloha::net::PrivateKey::from_file(data_dir() + "/tls/apns-key.p8", err);
    REQUIRE(ec);
    CHECK(aloha::push::sign_jwt(aloha::push::JwtAlg::rs256, "{}", "{}", *ec).empty());
  }
}
