#include "api/params.h"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

using aloha::api::ApiError;
using aloha::api::FormParams;
using aloha::api::JsonBody;
using aloha::api::JsonDoc;
using aloha::api::JType;
using aloha::api::Null;
using aloha::api::Presence;

namespace {

template <typename F>
ApiError error_of(F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e;
  }
  FAIL("expected an ApiError");
  return {};
}

aloha::http::Request form_request(std::string query, std::string body, std::string content_type) {
  aloha::http::Request r;
  r.method = "POST";
  r.path = "/api/v1/remotes/server/register";
  r.query = std::move(query);
  r.target = r.path + (r.query.empty() ? "" : "?" + r.query);
  r.body = std::move(body);
  if (!content_type.empty()) r.headers.push_back({"content-type", std::move(content_type)});
  return r;
}

std::string body_error(std::string_view body) {
  return error_of([&] { (void)JsonBody::parse(body); }).msg;
}

}  // namespace

TEST_SUITE("params") {
  TEST_CASE("form: body values win over the query string, and the last repeated value wins") {
    auto req = form_request("a=q&b=q1&b=q2&only_query=1", "a=b1&a=b2&c=3",
                            "application/x-www-form-urlencoded");
    FormParams p = FormParams::from_request(req);
    CHECK(p.str("a", true) == "b2");
    CHECK(p.str("b", true) == "q2");
    CHECK(p.str("c", true) == "3");
    CHECK(p.str("missing", false) == std::nullopt);
    CHECK(p.size() == 4);
    CHECK(p.unused() == std::vector<std::string>{"only_query"});
  }

  TEST_CASE("form: multipart bodies and bodies without a Content-Type are decoded") {
    std::string mp =
        "--b0undary\r\nContent-Disposition: form-data; name=\"user_id\"\r\n\r\n10\r\n"
        "--b0undary\r\nContent-Disposition: form-data; name=\"token\"; filename=\"t\"\r\n\r\nabc\r\n"
        "--b0undary--\r\n";
    FormParams p = FormParams::from_request(form_request("", mp, "multipart/form-data; boundary=b0undary"));
    CHECK(p.json_int("user_id", true)->value == 10);
    CHECK(p.str("token", true) == "abc");

    FormParams q = FormParams::from_request(form_request("", "x=1", ""));
    CHECK(q.str("x", true) == "1");
  }

  TEST_CASE("form: undecodable input is 400 Malformed payload") {
    const aloha::http::Request bad[] = {
        form_request("a=%zz", "", ""),
        form_request("", "a=%", "application/x-www-form-urlencoded"),
        form_request("", "a=%FF", "application/x-www-form-urlencoded"),
        form_request("a=\xC3", "", ""),
        form_request("", "--x\r\nContent-Disposition: form-data; name=a\r\n\r\nv", "multipart/form-data; boundary=x"),
        form_request("", "a=1", "multipart/form-data"),
    };
    for (const auto& r : bad) {
      CAPTURE(r.query);
      CAPTURE(r.body);
      ApiError e = error_of([&] { (void)FormParams::from_request(r); });
      CHECK(e.status == 400);
      CHECK(e.code == "BAD_REQUEST");
      CHECK(e.msg == "Malformed payload");
    }
  }

  TEST_CASE("form: a missing required parameter is REQUEST_VARIABLE_MISSING with var_name") {
    FormParams p = FormParams::from_fields({}, {{"other", "1"}});
    ApiError e = error_of([&] { (void)p.str("hostname", true); });
    CHECK(e.status == 400);
    CHECK(e.code == "REQUEST_VARIABLE_MISSING");
    CHECK(e.msg == "Missing 'hostname' argument");
    REQUIRE(e.extra.size() == 1);
    CHECK(e.extra[0] == std::pair<std::string, std::string>{"var_name", "\"hostname\""});
    // The primary name is reported even when an alias is accepted.
    ApiError e2 = error_of([&] { (void)p.stripped_str("aloha_org_id", true, "zulip_org_id"); });
    CHECK(e2.msg == "Missing 'aloha_org_id' argument");
    CHECK(error_of([&] { (void)p.json_int("user_id", true); }).code == "REQUEST_VARIABLE_MISSING");
    CHECK(p.json_int("user_id", false) == std::nullopt);
  }

  TEST_CASE("form: the alias is accepted, counts as used, and both names sent are confusing") {
    FormParams p = FormParams::from_fields({}, {{"zulip_org_id", "  id-1 "}, {"server_uuid", "x"}});
    CHECK(p.stripped_str("aloha_org_id", true, "zulip_org_id") == "id-1");
    CHECK(p.unused() == std::vector<std::string>{"server_uuid"});

    FormParams blank = FormParams::from_fields({}, {{"zulip_org_key", " \t\n"}});
    CHECK(error_of([&] { (void)blank.stripped_str("aloha_org_key", true, "zulip_org_key"); }).msg ==
          "aloha_org_key cannot be blank");

    FormParams both = FormParams::from_fields({{"aloha_org_id", "a"}}, {{"zulip_org_id", "b"}});
    ApiError e = error_of([&] { (void)both.str("aloha_org_id", true, "zulip_org_id"); });
    CHECK(e.status == 400);
    CHECK(e.code == "REQUEST_CONFUSING_VAR");
    CHECK(e.msg == "Can't decide between 'aloha_org_id' and 'zulip_org_id' arguments");
    REQUIRE(e.extra.size() == 2);
    CHECK(e.extra[0] == std::pair<std::string, std::string>{"var_name1", "\"aloha_org_id\""});
    CHECK(e.extra[1] == std::pair<std::string, std::string>{"var_name2", "\"zulip_org_id\""});
  }

  TEST_CASE("form: str is verbatim; stripped_str strips Unicode whitespace like Python") {
    FormParams p = FormParams::from_fields(
        {}, {{"s", "  keep me  "}, {"t", "\xC2\xA0\xE3\x80\x80tok\xE2\x80\x83\x1F"}, {"e", ""},
             {"u", "\xC3\xA9"}});
    CHECK(p.str("s", true) == "  keep me  ");
    CHECK(p.stripped_str("t", true) == "tok");
    CHECK(p.stripped_str("u", true) == "\xC3\xA9");
    CHECK(error_of([&] { (void)p.stripped_str("e", true); }).msg == "e cannot be blank");
    CHECK(p.str("e", true) == "");
    CHECK(aloha::api::strip_whitespace("\xE2\x80\x8B" "x") == "\xE2\x80\x8B" "x");  // ZWSP is not space
  }

  TEST_CASE("form: Json[int] accepts only JSON integer literals and flags int64 overflow") {
    struct Row {
      const char* text;
      const char* error;  // nullptr: accepted
      int64_t value;
      bool too_large;
    };
    const Row rows[] = {
        {"10", nullptr, 10, false},
        {"-5", nullptr, -5, false},
        {"0", nullptr, 0, false},
        {"-0", nullptr, 0, false},
        {" 7\n", nullptr, 7, false},
        {"9223372036854775807", nullptr, std::numeric_limits<int64_t>::max(), false},
        {"-9223372036854775808", nullptr, std::numeric_limits<int64_t>::min(), false},
        {"9223372036854775808", nullptr, std::numeric_limits<int64_t>::max(), true},
        {"18446744073709551616", nullptr, std::numeric_limits<int64_t>::max(), true},
        {"100000000000000000000000000000", nullptr, std::numeric_limits<int64_t>::max(), true},
        {"-9223372036854775809", nullptr, std::numeric_limits<int64_t>::min(), true},
        {"1.0", "user_id is not an integer", 0, false},
        {"1e3", "user_id is not an integer", 0, false},
        {"1E3", "user_id is not an integer", 0, false},
        {"\"1\"", "user_id is not an integer", 0, false},
        {"true", "user_id is not an integer", 0, false},
        {"null", "user_id is not an integer", 0, false},
        {"[1]", "user_id is not an integer", 0, false},
        {"NaN", "user_id is not an integer", 0, false},
        {"-Infinity", "user_id is not an integer", 0, false},
        {"1e999", "user_id is not an integer", 0, false},
        {"", "user_id is not valid JSON", 0, false},
        {"abc", "user_id is not valid JSON", 0, false},
        {"01", "user_id is not valid JSON", 0, false},
        {"1 2", "user_id is not valid JSON", 0, false},
        {"+1", "user_id is not valid JSON", 0, false},
        {"0x10", "user_id is not valid JSON", 0, false},
    };
    for (const auto& r : rows) {
      CAPTURE(r.text);
      FormParams p = FormParams::from_fields({}, {{"user_id", r.text}});
      if (r.error == nullptr) {
        auto v = p.json_int("user_id", true);
        REQUIRE(v.has_value());
        CHECK(v->value == r.value);
        CHECK(v->too_large == r.too_large);
      } else {
        ApiError e = error_of([&] { (void)p.json_int("user_id", true); });
        CHECK(e.code == "BAD_REQUEST");
        CHECK(e.msg == r.error);
      }
    }
  }

  TEST_CASE("form: Json[T] parses any JSON and reports type errors by the parameter name") {
    FormParams p = FormParams::from_fields(
        {}, {{"realm_counts", "[{\"id\":1}]"}, {"version", "\"\\\"1.8\\\"\""}, {"bad", "[1,"}, {"n", "NaN"}});
    auto counts = p.json("realm_counts", true);
    REQUIRE(counts.has_value());
    aloha::api::expect_type(*counts, counts->root(), "realm_counts", JType::list);
    CHECK(error_of([&] { aloha::api::expect_type(*counts, counts->root(), "realm_counts", JType::dict); }).msg ==
          "realm_counts is not a dict");
    auto version = p.json("version", true);
    REQUIRE(version.has_value());
    CHECK(std::string(version->root().GetString()) == "\"1.8\"");
    CHECK(error_of([&] { (void)p.json("bad", true); }).msg == "bad is not valid JSON");
    auto n = p.json("n", true);
    REQUIRE(n.has_value());
    CHECK(std::isnan(n->root().GetDouble()));
    CHECK(p.json("absent", false) == std::nullopt);
  }

  TEST_CASE("form: raw does not mark used; unused lists the rest sorted by byte order") {
    FormParams p = FormParams::from_fields({{"z", "1"}, {"B", "2"}}, {{"a", "3"}, {"\xC3\xA9", "4"}, {"m", "5"}});
    REQUIRE(p.raw("z") != nullptr);
    CHECK(*p.raw("z") == "1");
    CHECK(p.raw("nope") == nullptr);
    CHECK(p.has("m"));
    (void)p.str("a", true);
    CHECK(p.unused() == std::vector<std::string>{"B", "m", "z", "\xC3\xA9"});
    p.mark_used("z");
    CHECK(p.unused() == std::vector<std::string>{"B", "m", "\xC3\xA9"});
  }

  TEST_CASE("length checks count code points and use the exact messages") {
    aloha::api::check_length("aloha_org_key", std::string(64, 'k'), 64);
    CHECK(error_of([] { aloha::api::check_length("aloha_org_id", "abc", 36); }).msg ==
          "aloha_org_id is not length 36");
    aloha::api::check_length("x", "\xC3\xA9\xE2\x82\xAC", 2);
    aloha::api::check_max_length("hostname", std::string(128, 'h'), 128);
    CHECK(error_of([] { aloha::api::check_max_length("hostname", std::string(129, 'h'), 128); }).msg ==
          "hostname is too long (limit: 128 characters)");
    CHECK(aloha::api::utf8_length("a\xC3\xA9\xF0\x9F\x98\x80") == 3);
  }

  TEST_CASE("json_quote: escapes quotes, backslashes and controls; keeps UTF-8") {
    CHECK(aloha::api::json_quote("") == "\"\"");
    CHECK(aloha::api::json_quote("plain") == "\"plain\"");
    CHECK(aloha::api::json_quote("a\"b\\c") == "\"a\\\"b\\\\c\"");
    CHECK(aloha::api::json_quote("\b\f\n\r\t") == "\"\\b\\f\\n\\r\\t\"");
    CHECK(aloha::api::json_quote(std::string("\x01\x1f\x00", 3)) == "\"\\u0001\\u001f\\u0000\"");
    CHECK(aloha::api::json_quote("\x7f/caf\xC3\xA9 \xE2\x80\xA8") == "\"\x7f/caf\xC3\xA9 \xE2\x80\xA8\"");
    // Round trip through the parser.
    JsonDoc d;
    std::string all;
    for (int c = 1; c < 128; ++c) all.push_back(static_cast<char>(c));
    all += "\xC3\xA9";
    REQUIRE(d.parse(aloha::api::json_quote(all)));
    CHECK(std::string(d.root().GetString(), d.root().GetStringLength()) == all);
  }

  TEST_CASE("json body: invalid UTF-8 is Malformed payload; non-objects are Malformed JSON") {
    CHECK(body_error("{\"a\":\"\xFF\"}") == "Malformed payload");
    CHECK(body_error("\xC3") == "Malformed payload");
    const char* malformed[] = {"", " ", "[]", "1", "\"s\"", "null", "{", "{\"a\":1,}", "{} {}", "{}x",
                               "{'a':1}", "{\"a\":01}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}",
                               "{\"a\":\"tab\there\"}", "{\"a\":NaN}"};
    for (const char* b : malformed) {
      CAPTURE(b);
      ApiError e = error_of([&] { (void)JsonBody::parse(std::string_view(b)); });
      CHECK(e.status == 400);
      CHECK(e.code == "BAD_REQUEST");
      CHECK(e.msg == "Malformed JSON");
    }
    CHECK(body_error(std::string_view("{}\0{}", 5)) == "Malformed JSON");
    // A Content-Type is irrelevant.
    auto req = form_request("user_id=1", " {\"user_id\": 5} ", "text/plain");
    JsonBody b = JsonBody::parse(req);
    CHECK(b.get_int("user_id", Presence::required)->value == 5);
    CHECK(JsonBody::parse("{\"e\":\"\\ud83d\\ude00\"}").get_str("e", Presence::required) == "\xF0\x9F\x98\x80");
  }

  TEST_CASE("json body: nesting is bounded") {
    auto nested = [](unsigned depth) {
      std::string s = "{\"a\":";
      s += std::string(depth - 1, '[');
      s += std::string(depth - 1, ']');
      return s + "}";
    };
    CHECK_NOTHROW((void)JsonBody::parse(nested(JsonDoc::kMaxDepth)));
    CHECK(body_error(nested(JsonDoc::kMaxDepth + 1)) == "Malformed JSON");
    CHECK(body_error("{\"a\":" + std::string(100000, '[')) == "Malformed JSON");
  }

  TEST_CASE("json body: typed access with request[\"key\"] messages") {
    JsonBody b = JsonBody::parse(R"({"user_id": 10, "user_uuid": "u", "realm_uuid": null,
        "gcm_payload": {"event": "message"}, "gcm_options": null, "android_devices": ["a", 5],
        "apns_payload": {"custom": [1]}, "flag": true, "f": 1.0, "s": "1"})");
    CHECK(b.get_int("user_id", Presence::optional, Null::absent)->value == 10);
    CHECK(b.get_str("user_uuid", Presence::optional) == "u");
    CHECK(b.get_str("realm_uuid", Presence::optional, Null::absent) == std::nullopt);
    CHECK(b.get_str("absent", Presence::optional) == std::nullopt);
    CHECK(b.get("flag", JType::boolean, Presence::required)->GetBool());
    REQUIRE(b.get("gcm_payload", JType::dict, Presence::optional) != nullptr);

    CHECK(error_of([&] { (void)b.get("realm_uuid", JType::string, Presence::optional); }).msg ==
          "request[\"realm_uuid\"] is not a string");
    CHECK(error_of([&] { (void)b.get("gcm_options", JType::dict, Presence::optional); }).msg ==
          "request[\"gcm_options\"] is not a dict");
    CHECK(error_of([&] { (void)b.get_int("f", Presence::optional); }).msg == "request[\"f\"] is not an integer");
    CHECK(error_of([&] { (void)b.get_int("s", Presence::optional); }).msg == "request[\"s\"] is not an integer");
    CHECK(error_of([&] { (void)b.get_int("flag", Presence::optional); }).msg == "request[\"flag\"] is not an integer");
    CHECK(error_of([&] { (void)b.get_str("user_id", Presence::optional); }).msg == "request[\"user_id\"] is not a string");
    CHECK(error_of([&] { (void)b.get("user_id", JType::list, Presence::optional); }).msg == "request[\"user_id\"] is not a list");
    CHECK(error_of([&] { (void)b.get("user_id", JType::boolean, Presence::optional); }).msg == "request[\"user_id\"] is not a boolean");

    ApiError missing = error_of([&] { (void)b.get_str("token", Presence::required); });
    CHECK(missing.status == 400);
    CHECK(missing.code == "BAD_REQUEST");
    CHECK(missing.msg == "request[\"token\"] field is missing: Field required");
    // A required key that is null with Null::absent is not "missing".
    CHECK(b.get_str("realm_uuid", Presence::required, Null::absent) == std::nullopt);

    const auto* devices = b.get("android_devices", JType::list, Presence::optional);
    REQUIRE(devices != nullptr);
    CHECK(error_of([&] {
            aloha::api::expect_items(b.doc(), *devices, JsonBody::path_of("android_devices"), JType::string);
          }).msg == "request[\"android_devices\"][1] is not a string");

    const auto* apns = b.get("apns_payload", JType::dict, Presence::optional);
    REQUIRE(apns != nullptr);
    CHECK(error_of([&] {
            (void)aloha::api::get_member(b.doc(), *apns, JsonBody::path_of("apns_payload"), "custom",
                                         JType::dict, Presence::optional);
          }).msg == "request[\"apns_payload\"][\"custom\"] is not a dict");
    CHECK(aloha::api::path_index(aloha::api::path_key("request", "push_requests"), 0) ==
          "request[\"push_requests\"][0]");
  }

  TEST_CASE("json body: integers beyond int64 are integers that are too large") {
    JsonBody b = JsonBody::parse(
        R"({"a": 9223372036854775807, "b": 9223372036854775808, "c": 123456789012345678901234567890,
            "d": -9223372036854775809, "e": 1e20, "f": -0, "g": [1, {"x": 1, "x": 99999999999999999999}]})");
    auto a = b.get_int("a", Presence::required);
    CHECK(a->value == std::numeric_limits<int64_t>::max());
    CHECK_FALSE(a->too_large);
    CHECK(b.get_int("b", Presence::required)->too_large);
    auto c = b.get_int("c", Presence::required);
    CHECK(c->too_large);
    CHECK(c->value == std::numeric_limits<int64_t>::max());
    auto d = b.get_int("d", Presence::required);
    CHECK(d->too_large);
    CHECK(d->value == std::numeric_limits<int64_t>::min());
    CHECK(error_of([&] { (void)b.get_int("e", Presence::required); }).msg == "request[\"e\"] is not an integer");
    CHECK(b.get_int("f", Presence::required)->value == 0);

    // The exact text survives for later conversion (Python's str() of a big int).
    const auto* cv = b.get("c", JType::integer, Presence::required);
    REQUIRE(b.doc().big_int_text(*cv) != nullptr);
    CHECK(*b.doc().big_int_text(*cv) == "123456789012345678901234567890");
    CHECK(b.doc().big_int_text(*b.get("a", JType::integer, Presence::required)) == nullptr);
    const auto& g = *b.get("g", JType::list, Presence::required);
    const auto* x = aloha::api::find_member(g[1], "x");  // last of a repeated key, as Python's json
    REQUIRE(x != nullptr);
    REQUIRE(b.doc().big_int_text(*x) != nullptr);
    CHECK(*b.doc().big_int_text(*x) == "99999999999999999999");
    CHECK(b.doc().is_integer(*x));
    CHECK(b.doc().big_int_text(*aloha::api::find_member(b.object(), "e")) == nullptr);

    // Survives moving the document.
    JsonBody moved = std::move(b);
    CHECK(moved.get_int("c", Presence::required)->too_large);
  }

  TEST_CASE("json body: numbers parse like Python's float, including overflow") {
    JsonDoc d;
    REQUIRE(d.parse(R"([0.1, 1e400, -1e400, 1e-400, 2.5E+3, 1.7976931348623157e308])"));
    CHECK(d.root()[0].GetDouble() == 0.1);
    CHECK(std::isinf(d.root()[1].GetDouble()));
    CHECK(d.root()[2].GetDouble() < 0);
    CHECK(std::isinf(d.root()[2].GetDouble()));
    CHECK(d.root()[3].GetDouble() == 0.0);
    CHECK(d.root()[4].GetDouble() == 2500.0);
    CHECK(d.root()[5].GetDouble() == std::numeric_limits<double>::max());
    CHECK_FALSE(d.is_integer(d.root()[4]));

    // Tokens RapidJSON alone refuses as too big; strings that look like numbers are untouched.
    std::string huge(400, '7');
    REQUIRE(d.parse("{\"s\": \"x\\\" 1e999\", \"a\": [1e999, 5, -" + huge + ", 0.5e-999, 12], \"b\": " + huge + "}"));
    const auto& a = d.root()["a"];
    CHECK(std::string(d.root()["s"].GetString()) == "x\" 1e999");
    CHECK(std::isinf(a[0].GetDouble()));
    CHECK_FALSE(d.is_integer(a[0]));
    CHECK(a[1].GetInt64() == 5);
    REQUIRE(d.big_int_text(a[2]) != nullptr);
    CHECK(*d.big_int_text(a[2]) == "-" + huge);
    CHECK(d.as_int(a[2])->too_large);
    CHECK(a[3].GetDouble() == 0.0);
    CHECK(a[4].GetInt64() == 12);
    REQUIRE(d.big_int_text(d.root()["b"]) != nullptr);
    CHECK(*d.big_int_text(d.root()["b"]) == huge);
    CHECK_FALSE(d.parse("[1e999, 01]"));
  }

  TEST_CASE("json body: a strict key set rejects the first unknown key") {
    JsonBody b = JsonBody::parse(R"({"token": "t", "token_kind": 1, "extra": 1, "more": 2})");
    CHECK_NOTHROW(b.reject_unknown({"token", "token_kind", "extra", "more", "unused"}));
    ApiError e = error_of([&] { b.reject_unknown({"token", "token_kind", "user_id"}); });
    CHECK(e.code == "BAD_REQUEST");
    CHECK(e.msg == "Argument \"extra\" at request[\"extra\"] is unexpected");
    JsonDoc realms;
    REQUIRE(realms.parse(R"([{"id": 1, "bogus": 2}])"));
    CHECK(error_of([&] {
            aloha::api::reject_unknown_keys(realms.root()[0], aloha::api::path_index("realms", 0), {"id"});
          }).msg == "Argument \"bogus\" at realms[0][\"bogus\"] is unexpected");
  }

  TEST_CASE("json doc: strings are unescaped in place wherever escapes and UTF-8 fall") {
    for (size_t n = 0; n < 20; ++n) {
      CAPTURE(n);
      const std::string a(n, 'a');
      JsonBody b = JsonBody::parse("{\"k" + a + "\": \"" + a + "\\n\\\"\\u00e9\xC3\xA9" + a + "\\/x\", \"n\": 1}");
      CHECK(b.get_str("k" + a, Presence::required) == a + "\n\"\xC3\xA9\xC3\xA9" + a + "/x");
      CHECK(b.get_int("n", Presence::required)->value == 1);
      // An escaped lone surrogate decodes to bytes that are not UTF-8, at any offset, in values
      // and in keys.
      CHECK(body_error("{\"k\": \"" + a + "\\udc00" + a + "\"}") == "Malformed JSON");
      CHECK(body_error("{\"" + a + "\\udfff\": 1}") == "Malformed JSON");
      CHECK(body_error("{\"k\": \"" + a + "\\ud800" + a + "\"}") == "Malformed JSON");
    }
  }

  TEST_CASE("json doc: a NUL anywhere in the text is refused, not taken as its end") {
    const std::string_view texts[] = {std::string_view("{}\0", 3), std::string_view("{} \0 ", 5),
                                      std::string_view("{\"a\":1}\0{}", 10),
                                      std::string_view("{\"a\":\"x\0\"}", 10),
                                      std::string_view("\0{}", 3), std::string_view("[1e999]\0", 8)};
    for (std::string_view t : texts) {
      CAPTURE(t.size());
      JsonDoc d;
      CHECK_FALSE(d.parse(t));
      CHECK(d.root().IsNull());
    }
    JsonDoc d;
    CHECK(d.parse(" {\"a\": [1e999]} \n"));
  }

  TEST_CASE("json doc: a Zulip-shaped notify body fits the slot's own buffer (no extra chunk)") {
    // Every push/notify in flight holds its document: the slot is sized for a usual body, and a
    // body like bench.py's must not make the allocator add a chunk.
    const std::string apns =
        "{\"alert\":{\"title\":\"Alice Example\",\"subtitle\":\"#general > lunch\",\"body\":\"Shall we go "
        "for lunch at noon? The new place on the corner has good reviews.\"},\"sound\":\"default\",\"badge\":0,"
        "\"custom\":{\"zulip\":{\"server\":\"chat.example.org\",\"realm_id\":2,\"realm_uri\":\"https://"
        "chat.example.org\",\"realm_url\":\"https://chat.example.org\",\"realm_name\":\"Example\",\"user_id\":"
        "17,\"sender_id\":9,\"sender_email\":\"alice@example.org\",\"time\":1700000000,\"recipient_type\":"
        "\"stream\",\"stream\":\"general\",\"stream_id\":5,\"topic\":\"lunch\",\"message_ids\":[123456]}}}";
    const std::string gcm =
        "{\"event\":\"message\",\"server\":\"chat.example.org\",\"realm_id\":\"2\",\"realm_uri\":\"https://"
        "chat.example.org\",\"realm_url\":\"https://chat.example.org\",\"realm_name\":\"Example\",\"user_id\":"
        "17,\"zulip_message_id\":123456,\"sender_id\":9,\"sender_email\":\"alice@example.org\",\"sender_full_"
        "name\":\"Alice Example\",\"sender_avatar_url\":\"https://chat.example.org/avatar/9\",\"time\":"
        "1700000000,\"recipient_type\":\"stream\",\"stream\":\"general\",\"stream_id\":5,\"topic\":\"lunch\","
        "\"content\":\"Shall we go for lunch at noon? The new place on the corner has good reviews.\","
        "\"content_truncated\":false}";
    const std::string body = "{\"user_id\":17,\"apns_payload\":" + apns + ",\"gcm_payload\":" + gcm +
                             ",\"gcm_options\":{\"priority\":\"high\"}}";
    JsonDoc d;
    REQUIRE(d.parse(body));
    const auto& alloc = d.document().GetAllocator();
    CHECK(alloc.Size() > body.size());       // the in-situ copy lives in the slot
    CHECK(alloc.Capacity() < 4096);          // only the embedded buffer: no chunk was added
    CHECK(alloc.Size() <= alloc.Capacity());
  }

  TEST_CASE("json doc: each document keeps its own strings across reuse of slots, moves and sizes") {
    auto text = [](const std::string& tag, size_t pad) {
      return "{\"tag\": \"" + tag + "\", \"pad\": \"" + std::string(pad, 'p') + "\", \"esc\": \"" + tag +
             "\\t\"}";
    };
    const size_t pads[] = {0, 10, 9000, 70000};
    std::vector<JsonDoc> kept;
    for (int round = 0; round < 3; ++round) {
      for (size_t i = 0; i < 4; ++i) {
        const std::string tag = "doc" + std::to_string(round) + "_" + std::to_string(i);
        {
          JsonDoc scratch;  // returned to the free list at once, then reused by the next parse
          REQUIRE(scratch.parse(text("scratch", pads[i])));
        }
        JsonDoc d;
        REQUIRE(d.parse(text(tag, pads[i])));
        kept.push_back(std::move(d));
      }
    }
    for (size_t k = 0; k < kept.size(); ++k) {
      const std::string tag = "doc" + std::to_string(k / 4) + "_" + std::to_string(k % 4);
      CAPTURE(tag);
      const rapidjson::Value& r = kept[k].root();
      CHECK(std::string(r["tag"].GetString(), r["tag"].GetStringLength()) == tag);
      CHECK(std::string(r["esc"].GetString(), r["esc"].GetStringLength()) == tag + "\t");
      CHECK(r["pad"].GetStringLength() == pads[k % 4]);
    }
    // A failed parse leaves nothing behind; the document parses again afterwards.
    JsonDoc d;
    CHECK_FALSE(d.parse("{\"a\": \"x\", \"b\": }"));
    REQUIRE(d.parse("{\"a\": \"y\"}"));
    CHECK(std::string(d.root()["a"].GetString()) == "y");
  }
}
