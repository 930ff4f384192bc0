// Python str()/repr() of JSON values, exactly as CPython writes them after json.loads (api.md
// Appendix): FCM data values must be strings, and Zulip-derived apps read what Python's str()
// produced. Pure functions; the table of non-printable code points is generated from Python's
// unicodedata by tools/gen_pystr_table.py.
#pragma once
#include <rapidjson/document.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace aloha::push {

// Nesting deeper than this is refused (std::invalid_argument) instead of recursing without
// bound; CPython itself fails long before on such input (RecursionError).
inline constexpr int kPyStrMaxDepth = 1000;

// str(v): a string verbatim; other values as python_repr(). Numbers as RapidJSON typed them:
// Int/Int64/Uint64 as integers, Double as a float. RapidJSON stores an integer literal beyond
// the uint64/int64 range as a double, so such integers are only exact via python_str_json().
// Object keys repeated in v follow Python's dict: first position, last value.
std::string python_str(const rapidjson::Value& v);
// repr(v): how v appears inside a container (strings quoted and escaped).
std::string python_repr(const rapidjson::Value& v);

// str() of the JSON text of one value, with integers of any size exact (the text's digits, as
// Python's int). False if json_text is not exactly one valid JSON value (UTF-8 validated) or
// nests deeper than kPyStrMaxDepth.
bool python_str_json(std::string_view json_text, std::string& out);

// Python's repr(float): shortest round-trip digits, ".0" on integral values, exponent form
// (at least two exponent digits, with a sign) from 1e16 up and below 1e-4; inf, -inf, nan.
std::string python_float_repr(double d);
// Python's repr(str) of UTF-8 text: quote choice, \\ \n \r \t, other non-printable characters
// as \xNN, \uNNNN or \UNNNNNNNN.
std::string python_string_repr(std::string_view utf8);
// Whether Python's str.isprintable() holds for the code point (exposed for tests).
bool python_printable(uint32_t cp);

}  // namespace aloha::push
