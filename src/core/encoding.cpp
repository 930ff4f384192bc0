#include "core/encoding.h"

#include <bit>
#include <cstdint>
#include <cstring>

namespace aloha::enc {

namespace {

std::string hex_with(std::string_view raw, const char* digits) {
  std::string out;
  out.resize(raw.size() * 2);
  for (size_t i = 0; i < raw.size(); ++i) {
    auto b = static_cast<unsigned char>(raw[i]);
    out[2 * i] = digits[b >> 4];
    out[2 * i + 1] = digits[b & 0x0f];
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr char kB64Std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string b64_with(std::string_view raw, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((raw.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= raw.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(raw[i])) << 16) | (uint32_t(uint8_t(raw[i + 1])) << 8) |
                 uint32_t(uint8_t(raw[i + 2]));
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  size_t rest = raw.size() - i;
  if (rest == 1) {
    uint32_t v = uint32_t(uint8_t(raw[i])) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (pad) out += "==";
  } else if (rest == 2) {
    uint32_t v = (uint32_t(uint8_t(raw[i])) << 16) | (uint32_t(uint8_t(raw[i + 1])) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    if (pad) out += '=';
  }
  return out;
}

// Standard-alphabet values by byte, -1 for every other byte: one load per character (the
// Authorization header of every authenticated request is decoded).
struct B64Table {
  signed char v[256];
  constexpr B64Table() : v() {
    for (int i = 0; i < 256; ++i) v[i] = -1;
    for (int i = 0; i < 26; ++i) {
      v['A' + i] = static_cast<signed char>(i);
      v['a' + i] = static_cast<signed char>(26 + i);
    }
    for (int i = 0; i < 10; ++i) v['0' + i] = static_cast<signed char>(52 + i);
    v[static_cast<int>('+')] = 62;
    v[static_cast<int>('/')] = 63;
  }
};
constexpr B64Table kB64Values;

int b64_value(char c) { return kB64Values.v[static_cast<unsigned char>(c)]; }

}  // namespace

std::string hex_lower(std::string_view raw) { return hex_with(raw, "0123456789abcdef"); }
std::string hex_upper(std::string_view raw) { return hex_with(raw, "0123456789ABCDEF"); }

bool hex_decode(std::string_view hex, unsigned char* out, size_t out_len) {
  if (hex.size() != out_len * 2) return false;
  for (size_t i = 0; i < out_len; ++i) {
    int hi = hex_value(hex[2 * i]);
    int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<unsigned char>((hi << 4) | lo);
  }
  return true;
}

bool hex_decode(std::string_view hex, std::string& out) {
  if (hex.size() % 2 != 0) return false;
  out.clear();
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = hex_value(hex[i]);
    int lo = hex_value(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out += static_cast<char>((hi << 4) | lo);
  }
  return true;
}

std::string base64_encode(std::string_view raw) { return b64_with(raw, kB64Std, true); }
std::string base64url_encode(std::string_view raw) { return b64_with(raw, kB64Url, false); }

bool base64_decode(std::string_view in, char* out, size_t cap, size_t& len) {
  len = 0;
  if (in.size() % 4 != 0 || cap < in.size() / 4 * 3) return false;
  for (size_t i = 0; i < in.size(); i += 4) {
    bool last = i + 4 == in.size();
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = in[i + static_cast<size_t>(k)];
      if (c == '=') {
        // '=' only in the final quantum, only in positions 3 and 4, and nothing but '=' after it.
        if (!last || k < 2) return false;
        ++pad;
        v[k] = 0;
        continue;
      }
      if (pad > 0) return false;
      v[k] = b64_value(c);
      if (v[k] < 0) return false;
    }
    uint32_t word = (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) |
                    uint32_t(v[3]);
    // RFC 4648 §3.5: pad bits must be zero for a canonical encoding; reject otherwise so that
    // "QR==" and "QQ==" do not both decode to "A".
    if (pad == 2 && (word & 0xffff) != 0) return false;
    if (pad == 1 && (word & 0xff) != 0) return false;
    out[len++] = static_cast<char>((word >> 16) & 0xff);
    if (pad < 2) out[len++] = static_cast<char>((word >> 8) & 0xff);
    if (pad < 1) out[len++] = static_cast<char>(word & 0xff);
  }
  return true;
}

bool base64_decode(std::string_view in, std::string& out) {
  if (in.size() % 4 != 0) return false;
  out.resize(in.size() / 4 * 3);
  size_t len = 0;
  const bool ok = base64_decode(in, out.data(), out.size(), len);
  out.resize(len);
  return ok;
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    // ASCII runs (almost all of a JSON body, every string of a usual one) eight bytes at a time.
    while (n - i >= 8) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if ((w & 0x8080808080808080ULL) != 0) break;
      i += 8;
    }
    if (i == n) break;
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    uint32_t min;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2; cp = c & 0x1f; min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3; cp = c & 0x0f; min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4; cp = c & 0x07; min = 0x10000;
    } else {
      return false;  // continuation byte, 0xc0/0xc1 (always overlong) or 0xf5..0xff
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}


namespace {

bool needs_json_escape(unsigned char c) { return c < 0x20 || c == '"' || c == '\\'; }

// Marks (high bit) the bytes of w that need an escape: < 0x20, '"' or '\\'. Bytes >= 0x80 are
// never marked. Subtraction borrows only start at a marked byte, so the lowest mark is always a
// real one (higher ones may be false and are re-checked bytewise).
uint64_t escape_marks(uint64_t w) {
  constexpr uint64_t k01 = 0x0101010101010101ULL;
  constexpr uint64_t k80 = 0x8080808080808080ULL;
  const uint64_t ctl = (w - k01 * 0x20) & ~w;
  const uint64_t q = w ^ (k01 * '"');
  const uint64_t b = w ^ (k01 * '\\');
  return (ctl | ((q - k01) & ~q) | ((b - k01) & ~b)) & k80;
}

void append_escape(std::string& out, unsigned char c) {
  switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\b': out += "\\b"; break;
    case '\f': out += "\\f"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    default: {
      static const char hex[] = "0123456789abcdef";
      const char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
      out.append(u, sizeof u);
    }
  }
}

// Index of the first byte of p[0, n) that needs an escape, or n. Little-endian machines test
// eight bytes per step, the tail as one word overlapping bytes already found clean (they add no
// marks), strings under eight bytes as two overlapping four-byte halves.
size_t first_json_escape(const char* p, size_t n) {
  if constexpr (std::endian::native == std::endian::little) {
    if (n >= 8) {
      uint64_t w;
      size_t i = 0;
      for (; i + 8 <= n; i += 8) {
        std::memcpy(&w, p + i, 8);
        if (const uint64_t m = escape_marks(w); m != 0) return i + static_cast<size_t>(std::countr_zero(m)) / 8;
      }
      if (i == n) return n;
      std::memcpy(&w, p + n - 8, 8);
      const uint64_t m = escape_marks(w);
      return m == 0 ? n : n - 8 + static_cast<size_t>(std::countr_zero(m)) / 8;
    }
    if (n >= 4) {
      uint32_t a, b;
      std::memcpy(&a, p, 4);
      std::memcpy(&b, p + n - 4, 4);
      const uint64_t m = escape_marks(uint64_t{a} | (uint64_t{b} << 32));
      if (m == 0) return n;
      const size_t bit = static_cast<size_t>(std::countr_zero(m));
      return bit < 32 ? bit / 8 : n - 4 + (bit - 32) / 8;
    }
  }
  for (size_t i = 0; i < n; ++i)
    if (needs_json_escape(static_cast<unsigned char>(p[i]))) return i;
  return n;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  const char* p = s.data();
  const size_t n = s.size();
  size_t i = first_json_escape(p, n);
  if (i == n) {
    // Nothing to escape (nearly every string): quotes and one copy.
    const size_t pos = out.size();
    out.resize(pos + n + 2);
    char* d = out.data() + pos;
    d[0] = '"';
    if (n != 0) std::memcpy(d + 1, p, n);
    d[n + 1] = '"';
    return;
  }
  out.reserve(out.size() + n + 8);
  out.push_back('"');
  // Runs that need no escape are appended whole.
  size_t run = 0;
  while (i < n) {
    const auto c = static_cast<unsigned char>(p[i]);
    if (!needs_json_escape(c)) {
      ++i;
      continue;
    }
    out.append(p + run, i - run);
    append_escape(out, c);
    run = ++i;
  }
  out.append(p + run, n - run);
  out.push_back('"');
}

bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace aloha::enc
