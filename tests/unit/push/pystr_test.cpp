#include <doctest/doctest.h>

#include <rapidjson/document.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "push/pystr.h"

using aloha::push::python_float_repr;
using aloha::push::python_printable;
using aloha::push::python_repr;
using aloha::push::python_str;
using aloha::push::python_str_json;
using aloha::push::python_string_repr;

namespace {

struct Case {
  const char* json;
  const char* expected;     // str(json.loads(json)) printed by CPython 3.11
  bool typed_exact;         // also exact through a RapidJSON-typed Value (no integer > 64 bits, no inf)
};

// Generated with python3 while writing this test (CPython 3.11):
//   for text in cases: print(text, str(json.loads(text)))
// Octal escapes keep the bytes exact (UTF-8 for non-ASCII).
const Case kCases[] = {
    {"\042abc\042", "abc", true},
    {"\042it's\042", "it's", true},
    {"\042\042", "", true},
    {"\042\134u00e9t\134u00e9 \134n\042", "\303\251t\303\251 \012", true},
    {"1", "1", true},
    {"-7", "-7", true},
    {"100000000000000000000", "100000000000000000000", false},
    {"-100000000000000000000", "-100000000000000000000", false},
    {"-0", "0", true},
    {"18446744073709551615", "18446744073709551615", true},
    {"18446744073709551616", "18446744073709551616", false},
    {"-9223372036854775808", "-9223372036854775808", true},
    {"-9223372036854775809", "-9223372036854775809", false},
    {"1.5", "1.5", true},
    {"2.0", "2.0", true},
    {"0.1", "0.1", true},
    {"0.0001", "0.0001", true},
    {"1e15", "1000000000000000.0", true},
    {"1e16", "1e+16", true},
    {"1.2345678901234568e17", "1.2345678901234568e+17", true},
    {"1e-5", "1e-05", true},
    {"1.8e308", "inf", false},
    {"-1.8e308", "-inf", false},
    {"1e-400", "0.0", true},
    {"-0.0", "-0.0", true},
    {"1E5", "100000.0", true},
    {"123456789.123456789", "123456789.12345679", true},
    {"5e-324", "5e-324", true},
    {"1.7976931348623157e308", "1.7976931348623157e+308", true},
    {"0.30000000000000004", "0.30000000000000004", true},
    {"1e22", "1e+22", true},
    {"1e-7", "1e-07", true},
    {"123e-2", "1.23", true},
    {"9007199254740993.0", "9007199254740992.0", true},
    {"0.00012345", "0.00012345", true},
    {"99999999999999990000.0", "9.999999999999998e+19", true},
    {"true", "True", true},
    {"false", "False", true},
    {"null", "None", true},
    {"{\042a\042:1,\042b\042:[1,\042x\042]}", "{'a': 1, 'b': [1, 'x']}", true},
    {"[]", "[]", true},
    {"{}", "{}", true},
    {"[[[]]]", "[[[]]]", true},
    {"{\042k\042:{\042n\042:null,\042t\042:true,\042f\042:false}}", "{'k': {'n': None, 't': True, 'f': False}}", true},
    {"[\042it's\042]", "[\042it's\042]", true},
    {"[\042say \134\042hi\134\042\042]", "['say \042hi\042']", true},
    {"[\042both ' and \134\042\042]", "['both \134' and \042']", true},
    {"[\042back\134\134slash\042]", "['back\134\134slash']", true},
    {"[\042tab\134t nl\134n cr\134r\042]", "['tab\134t nl\134n cr\134r']", true},
    {"[\042\134u0000\134u001f\134u007f\134u0080\134u00a0\134u00ad\134u00e9\134u00ff\042]", "['\134x00\134x1f\134x7f\134x80\134xa0\134xad\303\251\303\277']", true},
    {"[\042\134u200b\134u2028\134u2029\134u3000 \134ue000\134uffff\134ufeff\134u0378\134u00a0x\042]", "['\134u200b\134u2028\134u2029\134u3000 \134ue000\134uffff\134ufeff\134u0378\134xa0x']", true},
    {"[\042\134ud83d\134ude00\042, \042\134udb40\134udc01\042, \042\134udb80\134udc00\042, \042\134ud800\134udc00\042, \042\134ud83f\134udffe\042]", "['\360\237\230\200', '\134U000e0001', '\134U000f0000', '\360\220\200\200', '\134U0001fffe']", true},
    {"{\042a\042:1,\042b\042:2,\042a\042:3}", "{'a': 3, 'b': 2}", true},
    {"{\042it's\042:\042x\042, \042q\134\042\042:[1.0,-0.5]}", "{\042it's\042: 'x', 'q\042': [1.0, -0.5]}", true},
    {"[100000000000000000000, 2e308, -0]", "[100000000000000000000, inf, 0]", false},
    {"{\042n\042: 12345678901234567890123}", "{'n': 12345678901234567890123}", false},
    {"[\042\134u1680\134u180e\134u061c\134u0600\134u0085\134u00a0\042]", "['\134u1680\134u180e\134u061c\134u0600\134x85\134xa0']", true},
    {"[\042\134ud834\134udd1e \134u0301 \134u0e01\042]", "['\360\235\204\236 \314\201 \340\270\201']", true},
    {"[\042 \042]", "[' ']", true},
    {"[\042'\134\042\042]", "['\134'\042']", true},
    {"[\042\134\134'\042]", "[\042\134\134'\042]", true},
};

}  // namespace

TEST_SUITE("pystr") {

TEST_CASE("pystr: python_str_json matches CPython str(json.loads(text)) for every case") {
  for (const auto& c : kCases) {
    std::string json_text = c.json;
    CAPTURE(json_text);
    std::string out = "junk";
    REQUIRE(python_str_json(c.json, out));
    CHECK(out == c.expected);
  }
}

TEST_CASE("pystr: python_str of a RapidJSON-typed value matches CPython where the value is exact") {
  int checked = 0;
  for (const auto& c : kCases) {
    if (!c.typed_exact) continue;
    std::string json_text = c.json;
    CAPTURE(json_text);
    rapidjson::Document doc;
    // Full precision: RapidJSON's default number parsing may be 1 ulp off; Python's is exact.
    doc.Parse<rapidjson::kParseFullPrecisionFlag | rapidjson::kParseValidateEncodingFlag>(c.json);
    REQUIRE_FALSE(doc.HasParseError());
    CHECK(python_str(doc) == c.expected);
    ++checked;
  }
  CHECK(checked > 50);
}

TEST_CASE("pystr: python_repr quotes strings as inside a container") {
  rapidjson::Document doc;
  doc.Parse(R"(["urgent", 5, true, "it's", null, 1.0])");
  REQUIRE(doc.IsArray());
  CHECK(python_repr(doc[0]) == "'urgent'");
  CHECK(python_repr(doc[1]) == "5");
  CHECK(python_repr(doc[2]) == "True");
  CHECK(python_repr(doc[3]) == "\"it's\"");
  CHECK(python_repr(doc[4]) == "None");
  CHECK(python_repr(doc[5]) == "1.0");
  CHECK(python_str(doc[0]) == "urgent");
}

TEST_CASE("pystr: python_str_json rejects anything but exactly one valid JSON value") {
  std::string out;
  CHECK_FALSE(python_str_json("", out));
  CHECK_FALSE(python_str_json("   ", out));
  CHECK_FALSE(python_str_json("1 2", out));
  CHECK_FALSE(python_str_json("[1,]", out));
  CHECK_FALSE(python_str_json("01", out));
  CHECK_FALSE(python_str_json("\"\xff\"", out));            // invalid UTF-8
  CHECK_FALSE(python_str_json(std::string("1\0", 2), out));  // trailing NUL
  CHECK_FALSE(python_str_json("\xef\xbb\xbf" "1", out));   // json.loads refuses a BOM
  // RapidJSON (like the request body parser) refuses exponents beyond the double range that
  // Python would read as inf; such a body never reaches str().
  CHECK_FALSE(python_str_json("1e400", out));
  CHECK(python_str_json(" [1] \n", out));
  CHECK(out == "[1]");
  // A JSON string that happens to look like a number stays a string.
  CHECK(python_str_json(R"(["1", 1])", out));
  CHECK(out == "['1', 1]");
}

TEST_CASE("pystr: nesting deeper than the limit is refused, not recursed into") {
  std::string deep(5000, '[');
  deep += std::string(5000, ']');
  std::string out;
  CHECK_FALSE(python_str_json(deep, out));
  rapidjson::Document doc;
  doc.Parse(deep.c_str());
  REQUIRE_FALSE(doc.HasParseError());
  CHECK_THROWS_AS(python_str(doc), std::invalid_argument);
  std::string ok(100, '[');
  ok += std::string(100, ']');
  CHECK(python_str_json(ok, out));
  CHECK(out == ok);
}

TEST_CASE("pystr: float repr follows CPython (values from python3 repr())") {
  CHECK(python_float_repr(0.5) == "0.5");
  CHECK(python_float_repr(1.0 / 3) == "0.3333333333333333");
  CHECK(python_float_repr(9007199254740992.0) == "9007199254740992.0");
  CHECK(python_float_repr(1e-4) == "0.0001");
  CHECK(python_float_repr(9.999e-5) == "9.999e-05");
  CHECK(python_float_repr(1e100) == "1e+100");
  CHECK(python_float_repr(-1.5e-10) == "-1.5e-10");
  CHECK(python_float_repr(123456.0) == "123456.0");
  CHECK(python_float_repr(1e16) == "1e+16");
  CHECK(python_float_repr(9999999999999998.0) == "9999999999999998.0");
  CHECK(python_float_repr(2.5e-05) == "2.5e-05");
  CHECK(python_float_repr(0.0) == "0.0");
  CHECK(python_float_repr(-0.0) == "-0.0");
  CHECK(python_float_repr(std::numeric_limits<double>::quiet_NaN()) == "nan");
  CHECK(python_float_repr(-std::numeric_limits<double>::infinity()) == "-inf");
}

TEST_CASE("pystr: string repr escapes lone surrogates and picks quotes like CPython") {
  // RapidJSON stores a lone "\udc00" escape as these three bytes; Python's repr is '\udc00'.
  CHECK(python_string_repr("\xed\xb0\x80") == "'\\udc00'");
  CHECK(python_string_repr("a'b\"c") == "'a\\'b\"c'");
  CHECK(python_string_repr("") == "''");
  CHECK(python_string_repr(std::string("\0", 1)) == "'\\x00'");
}

TEST_CASE("pystr: printable table agrees with str.isprintable() at category edges") {
  struct P { uint32_t cp; bool printable; };
  // From python3: chr(cp).isprintable()
  const P ps[] = {
      {0x20, true}, {0x7E, true}, {0x7F, false}, {0xA0, false}, {0xA1, true}, {0xAD, false},
      {0x378, false}, {0x37A, true}, {0x61C, false}, {0x1680, false}, {0x2000, false},
      {0x200B, false}, {0x2028, false}, {0x202F, false}, {0x3000, false}, {0xD7FF, false},
      {0xD800, false}, {0xDFFF, false}, {0xE000, false}, {0xF8FF, false}, {0xF900, true},
      {0xFEFF, false}, {0xFFFD, true}, {0xFFFE, false}, {0x10000, true}, {0x1F600, true},
      {0x1FFFE, false}, {0x2A6DF, true}, {0x2A6E0, false}, {0xE0001, false}, {0xE0100, true},
      {0xF0000, false}, {0x10FFFD, false}, {0x10FFFF, false}, {0x31350, false}, {0x3134A, true},
      {0x0, false}, {0x41, true},
  };
  for (const auto& p : ps) {
    CAPTURE(p.cp);
    CHECK(python_printable(p.cp) == p.printable);
  }
}

}  // TEST_SUITE
