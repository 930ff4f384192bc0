#include "http/form.h"

#include <doctest/doctest.h>

#include <string>

using aloha::http::FormFields;

namespace {

FormFields urlencoded_ok(std::string_view in) {
  FormFields out;
  std::string err;
  REQUIRE_MESSAGE(aloha::http::decode_urlencoded(in, out, err), err);
  return out;
}

bool urlencoded_fails(std::string_view in) {
  FormFields out;
  std::string err;
  bool ok = aloha::http::decode_urlencoded(in, out, err);
  if (!ok) CHECK_FALSE(err.empty());
  return !ok;
}

std::string part(std::string_view disposition, std::string_view content,
                 std::string_view extra_headers = "") {
  std::string s = "--XyZ\r\nContent-Disposition: ";
  s += disposition;
  s += "\r\n";
  s += extra_headers;
  s += "\r\n";
  s += content;
  s += "\r\n";
  return s;
}

}  // namespace

TEST_SUITE("form") {
  TEST_CASE("utf8: accepts well-formed text and rejects overlongs, surrogates and truncation") {
    struct Row {
      std::string text;
      bool valid;
    };
    const Row rows[] = {
        {"", true},
        {"plain ascii", true},
        {"caf\xC3\xA9", true},                  // é
        {"\xE2\x82\xAC", true},                 // €
        {"\xF0\x9F\x98\x80", true},             // U+1F600
        {"\xF4\x8F\xBF\xBF", true},             // U+10FFFF
        {"\xED\x9F\xBF", true},                 // U+D7FF
        {"\xEE\x80\x80", true},                 // U+E000
        {std::string("a\0b", 3), true},         // NUL is a valid code point
        {"\xC3", false},                        // truncated
        {"\xE2\x82", false},                    // truncated
        {"\x80", false},                        // lone continuation
        {"\xC0\xAF", false},                    // overlong '/'
        {"\xC1\xBF", false},                    // overlong
        {"\xE0\x80\xAF", false},                // overlong
        {"\xF0\x80\x80\xAF", false},            // overlong
        {"\xED\xA0\x80", false},                // U+D800 surrogate
        {"\xED\xBF\xBF", false},                // U+DFFF surrogate
        {"\xF4\x90\x80\x80", false},            // U+110000
        {"\xF5\x80\x80\x80", false},            // lead byte F5
        {"\xFF", false},
        {"\xC3\x28", false},                    // bad continuation
        {"ok\xE2\x82\xACok\xC3", false},
    };
    for (const auto& r : rows) {
      CAPTURE(r.text);
      CHECK(aloha::http::valid_utf8(r.text) == r.valid);
    }
  }

  TEST_CASE("urlencoded: decodes pairs in order, '+' as space and %XX bytes") {
    FormFields f = urlencoded_ok("a=1&b=x+y&c=%41%2b%3D%26&d=caf%C3%A9&a=2");
    REQUIRE(f.size() == 5);
    CHECK(f[0] == std::pair<std::string, std::string>{"a", "1"});
    CHECK(f[1].second == "x y");
    CHECK(f[2].second == "A+=&");
    CHECK(f[3].second == "caf\xC3\xA9");
    CHECK(f[4] == std::pair<std::string, std::string>{"a", "2"});
  }

  TEST_CASE("urlencoded: names are decoded too; bare names have empty values; empty segments skipped") {
    FormFields f = urlencoded_ok("&&na%6De&flag&empty=&=v&&x=a=b&");
    REQUIRE(f.size() == 5);
    CHECK(f[0] == std::pair<std::string, std::string>{"name", ""});
    CHECK(f[1] == std::pair<std::string, std::string>{"flag", ""});
    CHECK(f[2] == std::pair<std::string, std::string>{"empty", ""});
    CHECK(f[3] == std::pair<std::string, std::string>{"", "v"});
    CHECK(f[4] == std::pair<std::string, std::string>{"x", "a=b"});
    CHECK(urlencoded_ok("").empty());
  }

  TEST_CASE("urlencoded: invalid percent sequences are errors") {
    CHECK(urlencoded_fails("a=%"));
    CHECK(urlencoded_fails("a=%4"));
    CHECK(urlencoded_fails("a=%G1"));
    CHECK(urlencoded_fails("a=%1G&b=2"));
    CHECK(urlencoded_fails("%zz=1"));
    CHECK(urlencoded_fails("a=100%"));
    CHECK_FALSE(urlencoded_fails("a=100%25"));
  }

  TEST_CASE("urlencoded: decoded bytes that are not UTF-8 are errors") {
    CHECK(urlencoded_fails("a=%FF"));
    CHECK(urlencoded_fails("a=%C3"));
    CHECK(urlencoded_fails("%ED%A0%80=1"));
    CHECK(urlencoded_fails("a=\xC3"));  // raw invalid byte
    CHECK_FALSE(urlencoded_fails("a=%E2%82%AC"));
  }

  TEST_CASE("urlencoded: refuses more fields than the bound") {
    std::string s;
    for (int i = 0; i < 1000; ++i) {
      s += 'f';
      s += std::to_string(i);
      s += "=1&";
    }
    CHECK(urlencoded_ok(s).size() == 1000);
    CHECK(urlencoded_fails(s + "one=more"));
    FormFields out;
    std::string err;
    CHECK_FALSE(aloha::http::decode_urlencoded("a=1&b=2&c=3", out, err, 2));
    CHECK(err == "too many fields");
  }

  TEST_CASE("content type: media type is lower-cased without parameters; params unquoted") {
    CHECK(aloha::http::media_type("Application/X-WWW-Form-Urlencoded; charset=UTF-8") ==
          "application/x-www-form-urlencoded");
    CHECK(aloha::http::media_type("  multipart/form-data  ;boundary=x") == "multipart/form-data");
    CHECK(aloha::http::media_type("") == "");
    std::string v;
    CHECK(aloha::http::header_param("multipart/form-data; BOUNDARY=abc", "boundary", v));
    CHECK(v == "abc");
    CHECK(aloha::http::header_param("multipart/form-data; charset=x; boundary=\"a b;\\\"c\"", "boundary", v));
    CHECK(v == "a b;\"c");
    CHECK_FALSE(aloha::http::header_param("form-data; filename=\"f\"", "name", v));
    CHECK(aloha::http::header_param("form-data; filename=\"f\"; name=n", "name", v));
    CHECK(v == "n");
  }

  TEST_CASE("multipart: decodes named parts, keeps file contents, skips nameless parts") {
    std::string body = "preamble ignored\r\n" + part("form-data; name=\"a\"", "1") +
                       part("form-data; name=\"file\"; filename=\"x.txt\"", "line1\r\nline2",
                            "Content-Type: text/plain\r\n") +
                       part("form-data", "nameless") + part("attachment; name=\"z\"", "not form-data") +
                       part("FORM-DATA; NAME=b", "") + part("form-data; name=\"caf\xC3\xA9\"", "\xE2\x82\xAC") +
                       "--XyZ--\r\nepilogue";
    FormFields f;
    std::string err;
    REQUIRE_MESSAGE(aloha::http::decode_multipart(body, "XyZ", f, err), err);
    REQUIRE(f.size() == 4);
    CHECK(f[0] == std::pair<std::string, std::string>{"a", "1"});
    CHECK(f[1] == std::pair<std::string, std::string>{"file", "line1\r\nline2"});
    CHECK(f[2] == std::pair<std::string, std::string>{"b", ""});
    CHECK(f[3] == std::pair<std::string, std::string>{"caf\xC3\xA9", "\xE2\x82\xAC"});
  }

  TEST_CASE("multipart: a body opening with the delimiter and transport padding is accepted") {
    std::string body = "--XyZ  \r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--XyZ--";
    FormFields f;
    std::string err;
    REQUIRE(aloha::http::decode_multipart(body, "XyZ", f, err));
    REQUIRE(f.size() == 1);
    CHECK(f[0].second == "v");
  }

  TEST_CASE("multipart: malformed framing, headers or encoding are errors") {
    const std::string good_part = part("form-data; name=\"a\"", "1");
    const std::string bad[] = {
        "",                                           // no delimiter at all
        "no boundary here",
        good_part,                                    // no close delimiter
        good_part + "--XyZ",                          // delimiter line not terminated
        "--XyZ\r\nContent-Disposition: form-data; name=a\r\n",          // headers never end
        "--XyZ\r\nContent-Disposition form-data\r\n\r\nv\r\n--XyZ--",   // header without colon
        "--XyZ\r\n folded: x\r\n\r\nv\r\n--XyZ--",                      // folded line
        "--XyZx\r\n\r\nv\r\n--XyZ--",                                   // garbage after delimiter
        part("form-data; name=\"a\"", "\xFF") + "--XyZ--",             // value not UTF-8
    };
    for (const auto& b : bad) {
      CAPTURE(b);
      FormFields f;
      std::string err;
      CHECK_FALSE(aloha::http::decode_multipart(b, "XyZ", f, err));
      CHECK_FALSE(err.empty());
    }
    FormFields f;
    std::string err;
    CHECK_FALSE(aloha::http::decode_multipart(good_part + "--XyZ--", "", f, err));
    CHECK_FALSE(aloha::http::decode_multipart(good_part + "--XyZ--", std::string(71, 'b'), f, err));
  }

  TEST_CASE("multipart: refuses more parts than the bound, counting nameless parts") {
    std::string body;
    for (int i = 0; i < 3; ++i) body += part("form-data", "x");
    body += "--XyZ--";
    FormFields f;
    std::string err;
    CHECK(aloha::http::decode_multipart(body, "XyZ", f, err, 3));
    CHECK(f.empty());
    CHECK_FALSE(aloha::http::decode_multipart(body, "XyZ", f, err, 2));
  }

  TEST_CASE("form body: chooses the decoder by Content-Type, case-insensitively") {
    FormFields f;
    std::string err;
    std::string ct = "Multipart/Form-Data; boundary=\"XyZ\"";
    std::string body = part("form-data; name=a", "1") + "--XyZ--";
    REQUIRE(aloha::http::decode_form_body(&ct, body, f, err));
    REQUIRE(f.size() == 1);
    CHECK(f[0].second == "1");

    f.clear();
    std::string ct_url = "APPLICATION/x-www-form-urlencoded; charset=utf-8";
    REQUIRE(aloha::http::decode_form_body(&ct_url, "a=1&b=2", f, err));
    CHECK(f.size() == 2);

    f.clear();
    std::string ct_other = "text/plain";
    REQUIRE(aloha::http::decode_form_body(&ct_other, "x=y", f, err));
    REQUIRE(f.size() == 1);
    f.clear();
    REQUIRE(aloha::http::decode_form_body(nullptr, "x=y", f, err));
    REQUIRE(f.size() == 1);
    f.clear();
    CHECK(aloha::http::decode_form_body(&ct, "", f, err));  // empty body: nothing to decode
    CHECK(f.empty());

    std::string no_boundary = "multipart/form-data";
    CHECK_FALSE(aloha::http::decode_form_body(&no_boundary, body, f, err));
    CHECK_FALSE(aloha::http::decode_form_body(nullptr, "a=%zz", f, err));
  }
}
