#include "core/crypto.h"

#include <mbedtls/md.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <pthread.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/encoding.h"
#include "core/log.h"

namespace aloha::crypto {

namespace {

// mbedtls_md()/mbedtls_md_hmac() exist with the same signature in 2.28 and 3.x (unlike the
// *_ret variants, renamed in 3.0), so no version guard is needed here.
const mbedtls_md_info_t* sha256_info() {
  static const mbedtls_md_info_t* info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
  if (info == nullptr) {
    LOG_ERROR("mbedTLS was built without SHA-256");
    abort();
  }
  return info;
}

[[noreturn]] void random_failed(const char* what, int err) {
  LOG_ERROR("no random source: %s: %s", what, strerror(err));
  abort();
}

void urandom_fill(unsigned char* p, size_t n) {
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) random_failed("/dev/urandom", errno);
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int err = r < 0 ? errno : EIO;
      close(fd);
      random_failed("read /dev/urandom", err);
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  close(fd);
}

constexpr size_t kSaltBytes = 16;
constexpr std::string_view kKeyScheme = "s256$";

}  // namespace

std::string sha256(std::string_view data) {
  std::string out(32, '\0');
  mbedtls_md(sha256_info(), reinterpret_cast<const unsigned char*>(data.data()), data.size(),
             reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  std::string out(32, '\0');
  mbedtls_md_hmac(sha256_info(), reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                  reinterpret_cast<const unsigned char*>(data.data()), data.size(),
                  reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

void random_bytes(void* out, size_t n) {
  auto* p = static_cast<unsigned char*>(out);
  while (n > 0) {
    // getrandom(2) returns at most 32 MiB per call and may be interrupted: loop. ENOSYS (very
    // old kernels, some sandboxes) falls back to the device.
    ssize_t r = getrandom(p, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOSYS || errno == EPERM) {
        urandom_fill(p, n);
        return;
      }
      random_failed("getrandom", errno);
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
}

namespace {
// UUIDs are drawn on the push hot path (one apns-id per push): take their randomness from a
// buffer refilled by one getrandom() per 256 UUIDs instead of a syscall each. A forked child
// drops the buffer (pthread_atfork) so parent and child never share bytes; a getpid() check per
// UUID would be a syscall per push (glibc stopped caching the pid in 2.25).
struct UuidPool {
  unsigned char bytes[4096];
  size_t used = sizeof bytes;
};
UuidPool g_uuid_pool;

void uuid_random(unsigned char* out, size_t n) {
  static const bool registered = [] {
    const int rc = pthread_atfork(nullptr, nullptr, [] { g_uuid_pool.used = sizeof g_uuid_pool.bytes; });
    if (rc != 0) random_failed("pthread_atfork", rc);
    return true;
  }();
  (void)registered;
  UuidPool& p = g_uuid_pool;
  if (p.used + n > sizeof p.bytes) {
    random_bytes(p.bytes, sizeof p.bytes);
    p.used = 0;
  }
  std::memcpy(out, p.bytes + p.used, n);
  std::memset(p.bytes + p.used, 0, n);  // a byte is handed out once
  p.used += n;
}
}  // namespace

std::string random_uuid4() {
  unsigned char b[16];
  uuid_random(b, sizeof b);
  // RFC 9562 §5.4: version 4 in the high nibble of byte 6, variant 10xx in byte 8.
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  static const char digits[] = "0123456789abcdef";
  std::string out(36, '-');
  size_t o = 0;
  for (size_t i = 0; i < 16; ++i) {
    if (o == 8 || o == 13 || o == 18 || o == 23) ++o;
    out[o++] = digits[b[i] >> 4];
    out[o++] = digits[b[i] & 15];
  }
  return out;
}

std::string random_alnum(size_t n) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  constexpr unsigned kSize = sizeof kAlphabet - 1;        // 62
  constexpr unsigned kLimit = 256 / kSize * kSize;        // 248: reject above to stay unbiased
  std::string out;
  out.reserve(n);
  unsigned char buf[64];
  while (out.size() < n) {
    random_bytes(buf, sizeof buf);
    for (unsigned char c : buf) {
      if (c >= kLimit) continue;
      out += kAlphabet[c % kSize];
      if (out.size() == n) break;
    }
  }
  return out;
}

bool ct_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  // Accumulate every difference so the running time does not depend on where bytes differ;
  // eight bytes per step (this runs for every authenticated request), no early exit, and the
  // result goes through a volatile so the compiler cannot turn the loop into a memcmp.
  const size_t n = a.size();
  uint64_t diff = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, y;
    memcpy(&x, a.data() + i, 8);
    memcpy(&y, b.data() + i, 8);
    diff |= x ^ y;
  }
  for (; i < n; ++i)
    diff |= static_cast<uint64_t>(static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
  volatile uint64_t result = diff;
  return result == 0;
}

std::string hash_key(std::string_view key) {
  char salt[kSaltBytes];
  random_bytes(salt, sizeof salt);
  std::string salted(salt, sizeof salt);
  salted.append(key);
  return std::string(kKeyScheme) + enc::hex_lower(std::string_view(salt, sizeof salt)) + '$' +
         enc::hex_lower(sha256(salted));
}

bool verify_key(std::string_view stored, std::string_view key) {
  if (stored.substr(0, kKeyScheme.size()) != kKeyScheme) return false;
  std::string_view rest = stored.substr(kKeyScheme.size());
  size_t dollar = rest.find('$');
  if (dollar != kSaltBytes * 2 || rest.size() != dollar + 1 + 64) return false;
  // Runs for every authenticated request: decoded on the stack, and salt || key hashed from a
  // stack buffer when the key has the usual size (64 characters), so no allocation.
  unsigned char expected[32];
  unsigned char digest[32];
  unsigned char buf[kSaltBytes + 128];
  if (!enc::hex_decode(rest.substr(0, dollar), buf, kSaltBytes)) return false;
  if (!enc::hex_decode(rest.substr(dollar + 1), expected, sizeof expected)) return false;
  if (key.size() <= sizeof buf - kSaltBytes) {
    memcpy(buf + kSaltBytes, key.data(), key.size());
    mbedtls_md(sha256_info(), buf, kSaltBytes + key.size(), digest);
  } else {
    std::string salted(reinterpret_cast<const char*>(buf), kSaltBytes);
    salted.append(key);
    mbedtls_md(sha256_info(), reinterpret_cast<const unsigned char*>(salted.data()), salted.size(),
               digest);
  }
  return ct_equal(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest),
                  std::string_view(reinterpret_cast<const char*>(expected), sizeof expected));
}

bool KeyCheckCache::verify(int64_t id, std::string_view stored, std::string_view key) {
  Entry& e = entries_[static_cast<uint64_t>(id) % kSlots];
  // Both comparisons are constant-time for equal lengths (the stored hash has a fixed length),
  // so a hit reveals nothing a full verify_key would not.
  if (e.used && e.id == id && ct_equal(e.stored, stored) && ct_equal(e.key, key)) {
    ++hits_;
    return true;
  }
  if (!verify_key(stored, key)) return false;
  e.used = true;
  e.id = id;
  e.stored.assign(stored);
  e.key.assign(key);
  return true;
}

}  // namespace aloha::crypto
