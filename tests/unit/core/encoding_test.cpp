#include <doctest/doctest.h>

#include <string>

#include "core/encoding.h"

using namespace aloha;

TEST_SUITE("encoding") {

TEST_CASE("encoding: hex encodes in both cases and decodes either case") {
  std::string raw("\x00\x01\xab\xff\x7f", 5);
  CHECK(enc::hex_lower(raw) == "0001abff7f");
  CHECK(enc::hex_upper(raw) == "0001ABFF7F");
  CHECK(enc::hex_lower("") == "");
  std::string out;
  CHECK(enc::hex_decode("0001abff7f", out));
  CHECK(out == raw);
  CHECK(enc::hex_decode("0001ABff7F", out));
  CHECK(out == raw);
  CHECK(enc::hex_decode("", out));
  CHECK(out.empty());
}

TEST_CASE("encoding: hex_decode rejects odd length and non-hex characters") {
  std::string out;
  CHECK_FALSE(enc::hex_decode("abc", out));
  CHECK_FALSE(enc::hex_decode("0g", out));
  CHECK_FALSE(enc::hex_decode("0 ", out));
  CHECK_FALSE(enc::hex_decode("-1", out));
}

TEST_CASE("encoding: base64 matches RFC 4648 section 10 vectors") {
  const char* vs[][2] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                         {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                         {"foobar", "Zm9vYmFy"}};
  for (auto& v : vs) {
    CAPTURE(v[0]);
    CHECK(enc::base64_encode(v[0]) == v[1]);
    std::string out = "junk";
    CHECK(enc::base64_decode(v[1], out));
    CHECK(out == v[0]);
  }
}

TEST_CASE("encoding: base64 uses + and /, base64url uses - and _ without padding") {
  std::string raw("\xfb\xff\xbf", 3);
  CHECK(enc::base64_encode(raw) == "+/+/");
  CHECK(enc::base64url_encode(raw) == "-_-_");
  CHECK(enc::base64url_encode("f") == "Zg");
  CHECK(enc::base64url_encode("fo") == "Zm8");
  CHECK(enc::base64url_encode("foo") == "Zm9v");
  CHECK(enc::base64url_encode(R"({"alg":"ES256"})") == "eyJhbGciOiJFUzI1NiJ9");
  std::string out;
  CHECK(enc::base64_decode("+/+/", out));
  CHECK(out == raw);
}

TEST_CASE("encoding: base64_decode round-trips every byte value") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t n = 0; n <= all.size(); n += 37) {
    std::string part = all.substr(n);
    std::string out;
    REQUIRE(enc::base64_decode(enc::base64_encode(part), out));
    CHECK(out == part);
  }
}

TEST_CASE("encoding: base64_decode rejects bad padding, characters, length, trailing bits") {
  std::string out;
  // wrong length
  CHECK_FALSE(enc::base64_decode("Zg", out));
  CHECK_FALSE(enc::base64_decode("Zg=", out));
  CHECK_FALSE(enc::base64_decode("Zm9vY", out));
  // bad padding
  CHECK_FALSE(enc::base64_decode("Z===", out));
  CHECK_FALSE(enc::base64_decode("====", out));
  CHECK_FALSE(enc::base64_decode("Zg=a", out));
  CHECK_FALSE(enc::base64_decode("Zg==Zm9v", out));  // padding before the end
  CHECK_FALSE(enc::base64_decode("Zm9v====", out));
  // bad characters (URL-safe alphabet, whitespace, NUL)
  CHECK_FALSE(enc::base64_decode("-_-_", out));
  CHECK_FALSE(enc::base64_decode("Zm9 ", out));
  CHECK_FALSE(enc::base64_decode("Zm9v\n", out));
  CHECK_FALSE(enc::base64_decode(std::string("Zm\0v", 4), out));
  // non-canonical: unused bits of the last symbol set
  CHECK_FALSE(enc::base64_decode("Zh==", out));
  CHECK_FALSE(enc::base64_decode("Zm9=", out));
  CHECK(enc::base64_decode("Zm8=", out));
  CHECK(out == "fo");
}

TEST_CASE("encoding: valid_utf8 accepts well-formed text") {
  CHECK(enc::valid_utf8(""));
  CHECK(enc::valid_utf8("plain ascii"));
  CHECK(enc::valid_utf8(std::string("nul\0inside", 10)));
  CHECK(enc::valid_utf8("\xc3\xa9"));              // é
  CHECK(enc::valid_utf8("\xe2\x82\xac"));          // €
  CHECK(enc::valid_utf8("\xef\xbf\xbf"));          // U+FFFF
  CHECK(enc::valid_utf8("\xf0\x9f\x98\x80"));      // 😀
  CHECK(enc::valid_utf8("\xf4\x8f\xbf\xbf"));      // U+10FFFF
  CHECK(enc::valid_utf8("\xed\x9f\xbf"));          // U+D7FF
}

TEST_CASE("encoding: valid_utf8 rejects overlong, surrogate, truncated and out-of-range") {
  CHECK_FALSE(enc::valid_utf8("\x80"));
  CHECK_FALSE(enc::valid_utf8("\xc0\xaf"));          // overlong '/'
  CHECK_FALSE(enc::valid_utf8("\xc1\xbf"));
  CHECK_FALSE(enc::valid_utf8("\xe0\x80\xaf"));      // overlong 3-byte
  CHECK_FALSE(enc::valid_utf8("\xf0\x80\x80\xaf"));  // overlong 4-byte
  CHECK_FALSE(enc::valid_utf8("\xed\xa0\x80"));      // U+D800
  CHECK_FALSE(enc::valid_utf8("\xed\xbf\xbf"));      // U+DFFF
  CHECK_FALSE(enc::valid_utf8("\xf4\x90\x80\x80"));  // U+110000
  CHECK_FALSE(enc::valid_utf8("\xf5\x80\x80\x80"));
  CHECK_FALSE(enc::valid_utf8("\xc3"));              // truncated
  CHECK_FALSE(enc::valid_utf8("\xe2\x82"));
  CHECK_FALSE(enc::valid_utf8("a\xe2\x82z"));
  CHECK_FALSE(enc::valid_utf8("\xc3\x28"));          // bad continuation
  CHECK_FALSE(enc::valid_utf8("\xff"));
}

}  // TEST_SUITE

namespace {

// Byte-at-a-time reference for append_json_string.
std::string json_string_reference(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          static const char hex[] = "0123456789abcdef";
          out += "\\u00";
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 0xf]);
        } else {
          out.push_back(ch);
        }
    }
  }
  return out + "\"";
}

}  // namespace

TEST_SUITE("encoding") {

TEST_CASE("encoding: append_json_string matches the bytewise escape at every offset and length") {
  // Every byte value, alone and at each position of strings around the 4- and 8-byte word loops,
  // with clean bytes (ASCII and UTF-8) around it, so the first, a later and two adjacent escapes
  // are all found wherever they fall in a word.
  const char fillers[] = {'a', '\x7f', '\xc3', '\xa9', ' ', '\x21', '\x5b', '\x5d'};
  for (int b = 0; b < 256; ++b) {
    for (size_t len = 1; len <= 19; ++len) {
      for (size_t pos = 0; pos < len; ++pos) {
        std::string s;
        for (size_t i = 0; i < len; ++i) s.push_back(fillers[(i + static_cast<size_t>(b)) % sizeof fillers]);
        s[pos] = static_cast<char>(b);
        if (pos + 3 < len) s[pos + 3] = '"';
        std::string out = "prefix";
        enc::append_json_string(out, s);
        if (out != "prefix" + json_string_reference(s)) {
          CAPTURE(b);
          CAPTURE(len);
          CAPTURE(pos);
          CHECK(out == "prefix" + json_string_reference(s));
        }
      }
    }
  }
  std::string out;
  enc::append_json_string(out, "");
  CHECK(out == "\"\"");
  enc::append_json_string(out, std::string(100, 'x') + "\n");
  CHECK(out == "\"\"\"" + std::string(100, 'x') + "\\n\"");
}

TEST_CASE("encoding: valid_utf8 finds a bad sequence after an ASCII run of any length") {
  for (size_t n = 0; n < 20; ++n) {
    CAPTURE(n);
    const std::string ascii(n, 'a');
    CHECK(enc::valid_utf8(ascii));
    CHECK(enc::valid_utf8(ascii + "\xc3\xa9" + ascii));
    CHECK_FALSE(enc::valid_utf8(ascii + "\xed\xb0\x80"));     // U+DC00
    CHECK_FALSE(enc::valid_utf8(ascii + "\xc3"));
    CHECK_FALSE(enc::valid_utf8(ascii + "\x80" + ascii));
    CHECK_FALSE(enc::valid_utf8("\xc3\xa9" + ascii + "\xff"));
  }
}

}  // TEST_SUITE

TEST_SUITE("encoding") {
TEST_CASE("ascii_iequals: folds A-Z only, compares every other byte exactly") {
  using aloha::enc::ascii_iequals;
  CHECK(ascii_iequals("Basic", "bASIC"));
  CHECK(ascii_iequals("", ""));
  CHECK_FALSE(ascii_iequals("basic", "basi"));
  CHECK_FALSE(ascii_iequals("basic", "basid"));
  CHECK_FALSE(ascii_iequals("@", "`"));       // 0x40 vs 0x60: not letters, not folded
  CHECK_FALSE(ascii_iequals("[", "{"));
  CHECK_FALSE(ascii_iequals("\xc3\x89", "\xc3\xa9"));  // É vs é: non-ASCII is never folded
  CHECK(ascii_iequals("100-Continue", "100-continue"));
}
}
