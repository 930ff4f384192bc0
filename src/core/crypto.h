// Small cryptographic helpers on top of mbedTLS (2.28 and 3.x): SHA-256, HMAC-SHA256, the OS
// random source, random identifiers, constant-time comparison and the hashed storage form of org
// keys. All functions are thread-safe and stateless; results are returned by value.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace aloha::crypto {

std::string sha256(std::string_view data);                              // raw 32 bytes
std::string hmac_sha256(std::string_view key, std::string_view data);  // raw 32 bytes

// Fills out with n bytes from getrandom(2), falling back to /dev/urandom where the system call
// is missing. There is no sensible way to continue without randomness: logs and aborts.
void random_bytes(void* out, size_t n);
std::string random_uuid4();          // lowercase canonical, e.g. "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
std::string random_alnum(size_t n);  // ASCII letters and digits, each equally likely

// Equal contents; time depends only on the lengths (and is constant for equal lengths).
bool ct_equal(std::string_view a, std::string_view b);

// Org keys are stored hashed: "s256$<16-byte salt, lowercase hex>$<sha256(salt || key), hex>".
// Keys are 64 random characters (high entropy), so a fast salted hash is enough; a slow KDF would
// block the event loop on every authenticated request.
std::string hash_key(std::string_view key);
// True when key hashes to stored; false for a malformed stored value. Constant-time in the key.
bool verify_key(std::string_view stored, std::string_view key);

// verify_key() with a memory of recent successes, for the per-request check of org keys: a
// request presenting the same key against the same stored hash as an earlier accepted one is
// accepted by a constant-time comparison instead of a SHA-256. Failures are never remembered; a
// new stored hash (key rotation) misses and replaces the entry. Direct-mapped by `id` (the
// server's row id), kSlots entries, so memory is bounded. One thread only (no locking).
class KeyCheckCache {
 public:
  static constexpr size_t kSlots = 256;
  bool verify(int64_t id, std::string_view stored, std::string_view key);
  uint64_t hits() const { return hits_; }  // for tests

 private:
  struct Entry {
    bool used = false;
    int64_t id = 0;
    std::string stored;
    std::string key;
  };
  Entry entries_[kSlots];
  uint64_t hits_ = 0;
};

}  // namespace aloha::crypto
