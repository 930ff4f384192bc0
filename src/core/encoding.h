// Byte-string encodings: hex, base64 (RFC 4648 §4 standard, §5 URL-safe without padding for JWT)
// and UTF-8 validation. Pure functions on std::string_view; no allocation beyond the result (none for the
// buffer forms) and no state. Decoders are strict: they return false and leave `out` unspecified on bad input.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace aloha::enc {

std::string hex_lower(std::string_view raw);
std::string hex_upper(std::string_view raw);
// Either case accepted; odd length or a non-hex character -> false.
bool hex_decode(std::string_view hex, std::string& out);
// Into a caller's buffer: false unless hex is exactly 2 * out_len hex digits.
bool hex_decode(std::string_view hex, unsigned char* out, size_t out_len);

// Standard alphabet with '=' padding.
std::string base64_encode(std::string_view raw);
// URL-safe alphabet ('-', '_'), no padding (RFC 7515 §2 base64url for JWT).
std::string base64url_encode(std::string_view raw);
// Standard alphabet, '='-padded, strict: length a multiple of 4, padding only at the end (at
// most two), no whitespace, and the unused trailing bits of the last symbol must be zero
// (RFC 4648 §3.5 canonical encoding), so each byte string has exactly one accepted spelling.
bool base64_decode(std::string_view in, std::string& out);
// The same into a caller's buffer of `cap` bytes (false when cap < in.size() / 4 * 3); `len` is
// the decoded length.
bool base64_decode(std::string_view in, char* out, size_t cap, size_t& len);

// Well-formed UTF-8 per RFC 3629: no overlong forms, no surrogates (U+D800..DFFF), max U+10FFFF.
// Appends s as a JSON string literal (RFC 8259 §7: quote, backslash and control characters
// escaped; other bytes, UTF-8 included, kept). The one JSON string writer of the project.
void append_json_string(std::string& out, std::string_view s);

bool valid_utf8(std::string_view s);

// ASCII case-insensitive equality (header names, auth schemes, UUID spellings): bytes outside
// A-Z compare exactly, so it is locale-free and never folds non-ASCII.
bool ascii_iequals(std::string_view a, std::string_view b);

}  // namespace aloha::enc
