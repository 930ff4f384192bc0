#include "core/encoding.h"

#include <cstdint>

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


void append_json_string(std::string& out, std::string_view s) {
  out.reserve(out.size() + s.size() + 2);
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static const char hex[] = "0123456789abcdef";
          out += "\\u00";
          out.push_back(hex[(static_cast<unsigned char>(c) >> 4) & 0xf]);
          out.push_back(hex[static_cast<unsigned char>(c) & 0xf]);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

}  // namespace aloha::enc
