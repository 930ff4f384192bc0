#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>

#include "core/crypto.h"
#include "core/encoding.h"

using namespace aloha;

namespace {
std::string hx(const std::string& raw) { return enc::hex_lower(raw); }
}  // namespace

TEST_SUITE("crypto") {

TEST_CASE("crypto: sha256 matches FIPS 180-2 vectors") {
  CHECK(hx(crypto::sha256("abc")) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hx(crypto::sha256("")) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hx(crypto::sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(crypto::sha256("abc").size() == 32);
}

TEST_CASE("crypto: hmac_sha256 matches RFC 4231 test cases 1-4, 6, 7") {
  struct V { std::string key, data, mac; };
  const V vs[] = {
      {std::string(20, '\x0b'), "Hi There",
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"Jefe", "what do ya want for nothing?",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {std::string(20, '\xaa'), std::string(50, '\xdd'),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16"
       "\x17\x18\x19",
       std::string(50, '\xcd'),
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      {std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {std::string(131, '\xaa'),
       "This is a test using a larger than block-size key and a larger than block-size data. The "
       "key needs to be hashed before being used by the HMAC algorithm.",
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
  for (const auto& v : vs) {
    CAPTURE(v.data);
    CHECK(hx(crypto::hmac_sha256(v.key, v.data)) == v.mac);
  }
}

TEST_CASE("crypto: random_bytes fills the buffer and differs between calls") {
  unsigned char a[64] = {}, b[64] = {};
  crypto::random_bytes(a, sizeof a);
  crypto::random_bytes(b, sizeof b);
  CHECK(std::string(reinterpret_cast<char*>(a), 64) != std::string(reinterpret_cast<char*>(b), 64));
  CHECK(std::string(reinterpret_cast<char*>(a), 64) != std::string(64, '\0'));
  crypto::random_bytes(nullptr, 0);  // zero length is a no-op
}

TEST_CASE("crypto: random_uuid4 is canonical lowercase version 4 and unique") {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    std::string u = crypto::random_uuid4();
    REQUIRE(u.size() == 36);
    for (size_t k = 0; k < u.size(); ++k) {
      if (k == 8 || k == 13 || k == 18 || k == 23) {
        CHECK(u[k] == '-');
      } else {
        bool lowhex = (u[k] >= '0' && u[k] <= '9') || (u[k] >= 'a' && u[k] <= 'f');
        CHECK(lowhex);
      }
    }
    CHECK(u[14] == '4');
    CHECK(std::string("89ab").find(u[19]) != std::string::npos);
    seen.insert(u);
  }
  CHECK(seen.size() == 200);
}

TEST_CASE("crypto: a forked child never draws the same UUID bytes as its parent") {
  (void)crypto::random_uuid4();  // the parent's pool is filled and partly used
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    std::string u = crypto::random_uuid4();
    ssize_t w = write(fds[1], u.data(), u.size());
    _exit(w == static_cast<ssize_t>(u.size()) ? 0 : 1);
  }
  close(fds[1]);
  std::string in_parent = crypto::random_uuid4();
  char buf[64] = {};
  ssize_t n = read(fds[0], buf, sizeof buf);
  close(fds[0]);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  REQUIRE(n == 36);
  CHECK(std::string(buf, 36) != in_parent);  // without the reset both took the pool's next bytes
}

TEST_CASE("crypto: random_alnum gives n letters/digits using the whole alphabet") {
  std::string s = crypto::random_alnum(64);
  CHECK(s.size() == 64);
  CHECK(crypto::random_alnum(0).empty());
  std::string big = crypto::random_alnum(20000);
  REQUIRE(big.size() == 20000);
  int counts[256] = {};
  for (char c : big) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    REQUIRE(ok);
    counts[static_cast<unsigned char>(c)]++;
  }
  // 62 symbols, ~322 each expected; a biased mapping (byte % 62) gives the first 8 symbols
  // ~5/4 of the others. Bounds are > 6 sigma wide so the test is not flaky.
  int distinct = 0, low = 1 << 30, high = 0;
  for (int c = 0; c < 256; ++c) {
    if (counts[c] == 0) continue;
    ++distinct;
    low = std::min(low, counts[c]);
    high = std::max(high, counts[c]);
  }
  CHECK(distinct == 62);
  CHECK(low > 210);
  CHECK(high < 440);
}

TEST_CASE("crypto: ct_equal compares contents and lengths") {
  CHECK(crypto::ct_equal("", ""));
  CHECK(crypto::ct_equal("abc", "abc"));
  CHECK_FALSE(crypto::ct_equal("abc", "abd"));
  CHECK_FALSE(crypto::ct_equal("abc", "ab"));
  CHECK_FALSE(crypto::ct_equal(std::string("a\0b", 3), std::string("a\0c", 3)));
  CHECK_FALSE(crypto::ct_equal("xbc", "abc"));
}

TEST_CASE("crypto: hash_key stores a salted sha256 that verify_key accepts") {
  std::string key = crypto::random_alnum(64);
  std::string stored = crypto::hash_key(key);
  REQUIRE(stored.size() == 5 + 32 + 1 + 64);
  CHECK(stored.substr(0, 5) == "s256$");
  CHECK(stored[37] == '$');
  CHECK(stored.find(key) == std::string::npos);
  CHECK(crypto::verify_key(stored, key));
  CHECK_FALSE(crypto::verify_key(stored, key + "x"));
  CHECK_FALSE(crypto::verify_key(stored, key.substr(1)));
  CHECK_FALSE(crypto::verify_key(stored, ""));
  // The hash is sha256(salt || key), so it can be checked independently.
  std::string salt;
  REQUIRE(enc::hex_decode(stored.substr(5, 32), salt));
  CHECK(stored.substr(38) == enc::hex_lower(crypto::sha256(salt + key)));
  // Two hashes of one key differ (random salt) and both verify.
  std::string stored2 = crypto::hash_key(key);
  CHECK(stored2 != stored);
  CHECK(crypto::verify_key(stored2, key));
}

TEST_CASE("crypto: verify_key rejects malformed stored values") {
  std::string stored = crypto::hash_key("k");
  CHECK_FALSE(crypto::verify_key("", "k"));
  CHECK_FALSE(crypto::verify_key("k", "k"));
  CHECK_FALSE(crypto::verify_key("s512" + stored.substr(4), "k"));
  CHECK_FALSE(crypto::verify_key(stored.substr(0, stored.size() - 1), "k"));
  CHECK_FALSE(crypto::verify_key(stored + "0", "k"));
  std::string bad_hex = stored;
  bad_hex[10] = 'g';
  CHECK_FALSE(crypto::verify_key(bad_hex, "k"));
  std::string flipped = stored;
  flipped.back() = flipped.back() == '0' ? '1' : '0';
  CHECK_FALSE(crypto::verify_key(flipped, "k"));
}

}  // TEST_SUITE
