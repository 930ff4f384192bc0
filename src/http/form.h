// Form decoding: application/x-www-form-urlencoded bodies and query strings, multipart/form-data
// bodies, and UTF-8 validation. Pure functions on caller-owned buffers; results are appended to a
// caller-owned ordered list of (name, value) pairs. Every decoder bounds the number of fields.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aloha::http {

// Decoded fields in the order they appear, repeated names kept.
using FormFields = std::vector<std::pair<std::string, std::string>>;

// Default bound on fields per query string / body (Django's DATA_UPLOAD_MAX_NUMBER_FIELDS) and on
// parts per multipart body.
inline constexpr std::size_t kMaxFormFields = 1000;

// True when `s` is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
bool valid_utf8(std::string_view s);

// Decodes `name=value&name2=value2` (query strings use the same syntax): `+` is a space, %XX is a
// byte; a segment without `=` is a name with an empty value; empty segments are skipped. Invalid
// percent sequences, more than `max_fields` fields, or a name or value that is not UTF-8 after
// decoding -> false with a short reason in `err` (never containing the input). On failure `out`
// may hold some of the fields.
bool decode_urlencoded(std::string_view in, FormFields& out, std::string& err,
                       std::size_t max_fields = kMaxFormFields);

// Decodes a multipart/form-data body (RFC 7578, RFC 2046 §5.1) with the given boundary (without
// the leading "--"). Each part with a Content-Disposition `name` parameter yields (name, content);
// file parts keep their content as the value; parts without a name are skipped. Malformed framing
// or headers, more than `max_parts` parts, or a non-UTF-8 name or value -> false with `err`.
bool decode_multipart(std::string_view body, std::string_view boundary, FormFields& out,
                      std::string& err, std::size_t max_parts = kMaxFormFields);

// The media type of a Content-Type value, lower-cased, parameters and surrounding whitespace
// removed: "Multipart/Form-Data; boundary=x" -> "multipart/form-data".
std::string media_type(std::string_view content_type);

// Value of parameter `name` (case-insensitive) of a Content-Type-like header value, unquoted
// (quoted-string per RFC 9110 §5.6.4). False when absent.
bool header_param(std::string_view header_value, std::string_view name, std::string& value);

// Decodes a request body according to its Content-Type (nullptr = absent): urlencoded, multipart
// (boundary required), anything else with a non-empty body is tried as urlencoded. An empty body
// yields no fields.
bool decode_form_body(const std::string* content_type, std::string_view body, FormFields& out,
                      std::string& err);

}  // namespace aloha::http
