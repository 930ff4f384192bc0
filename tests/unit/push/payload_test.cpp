// Payload building (api.md push/notify steps 3–4, test_notification, Appendix): remove-id
// truncation, APNs hoisting, FCM data as Python's str(), FCM priority and gcm_options messages.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "api/params.h"
#include "push/payload.h"

using namespace aloha;
using aloha::api::JsonDoc;

namespace {

JsonDoc parse(const std::string& text) {
  JsonDoc d;
  REQUIRE_MESSAGE(d.parse(text), text);
  return d;
}

push::BigInts big_of(const JsonDoc& d) {
  return push::BigInts{&d, [](const void* c, const rapidjson::Value& v) {
                         return static_cast<const JsonDoc*>(c)->big_int_text(v);
                       }};
}

std::string truncated(const std::string& in) {
  std::string out;
  if (!push::truncate_remove_ids(in, out)) return "<invalid>";
  return out;
}

std::string apns(const std::string& payload) {
  JsonDoc d = parse(payload);
  return push::build_apns_body(d.root(), big_of(d));
}

std::string fcm(const std::string& payload) {
  JsonDoc d = parse(payload);
  return push::build_fcm_data(d.root(), big_of(d));
}

// Runs fcm_priority; returns "HIGH", "NORMAL" or the error message.
std::string priority(const std::string& options, const std::string& payload) {
  JsonDoc o = parse(options);
  JsonDoc p = parse(payload);
  bool high = false;
  std::string err;
  if (!push::fcm_priority(&o.root(), p.root(), big_of(o), high, err)) return err;
  return high ? "HIGH" : "NORMAL";
}

}  // namespace

TEST_SUITE("push payload") {

TEST_CASE("remove ids: sorted ascending, canonical decimal, duplicates kept") {
  CHECK(truncated("3,1,2") == "1,2,3");
  CHECK(truncated("007") == "7");
  CHECK(truncated("-0") == "0");
  CHECK(truncated("-000") == "0");
  CHECK(truncated("5,5,1") == "1,5,5");
  CHECK(truncated("-5,3,-10,0") == "-10,-5,0,3");
  CHECK(truncated("100000000000000000000000,99,-100000000000000000000000") ==
        "-100000000000000000000000,99,100000000000000000000000");
}

TEST_CASE("remove ids: invalid forms are refused") {
  for (const char* bad : {"", ",", "1,", ",1", "1,,2", " 1", "1 ", "+1", "1_000", "1.5", "a", "-", "--1",
                          "1e3", "0x10", "１"}) {
    CAPTURE(bad);
    CHECK(truncated(bad) == "<invalid>");
  }
}

TEST_CASE("remove ids: only the 200 largest are kept") {
  // Appended piecewise (GCC 12 warns falsely on `"," + std::to_string(i)`).
  auto join = [](std::string& out, int i) {
    if (!out.empty()) out.push_back(',');
    out.append(std::to_string(i));
  };
  std::string in, expected;
  for (int i = 300; i >= 1; --i) join(in, i);
  for (int i = 101; i <= 300; ++i) join(expected, i);
  CHECK(truncated(in) == expected);
  // Exactly 200: nothing dropped.
  std::string two_hundred;
  for (int i = 1; i <= 200; ++i) join(two_hundred, i);
  CHECK(truncated(two_hundred) == two_hundred);
}

TEST_CASE("remove ids: rewritten in place only for event remove with non-empty ids") {
  struct Row {
    const char* in;
    push::RemoveIds result;
    const char* out;
  };
  const Row rows[] = {
      {R"({"event":"remove","zulip_message_ids":"3,007,1"})", push::RemoveIds::rewritten,
       R"({"event":"remove","zulip_message_ids":"1,3,7"})"},
      {R"({"event":"message","zulip_message_ids":"3,x"})", push::RemoveIds::untouched,
       R"({"event":"message","zulip_message_ids":"3,x"})"},
      {R"({"event":"remove","zulip_message_ids":""})", push::RemoveIds::untouched,
       R"({"event":"remove","zulip_message_ids":""})"},
      {R"({"event":"remove","zulip_message_ids":null})", push::RemoveIds::untouched,
       R"({"event":"remove","zulip_message_ids":null})"},
      {R"({"event":"remove"})", push::RemoveIds::untouched, R"({"event":"remove"})"},
      {R"({"event":"remove","zulip_message_ids":"1,,2"})", push::RemoveIds::invalid, nullptr},
      {R"({"event":"remove","zulip_message_ids":5})", push::RemoveIds::invalid, nullptr},
      {R"({"event":"remove","zulip_message_ids":[1]})", push::RemoveIds::invalid, nullptr},
  };
  for (const auto& r : rows) {
    CAPTURE(r.in);
    JsonDoc d = parse(r.in);
    CHECK(push::rewrite_remove_ids(d.document(), d.document().GetAllocator()) == r.result);
    if (r.out) CHECK(push::to_json(d.root()) == r.out);
  }
}

TEST_CASE("apns body: custom's keys hoisted, the rest under aps") {
  CHECK(apns(R"({"alert":{"title":"t"},"sound":"default","badge":0,"custom":{"zulip":{"a":1}}})") ==
        R"({"zulip":{"a":1},"aps":{"alert":{"title":"t"},"sound":"default","badge":0}})");
  CHECK(apns(R"({"alert":"x"})") == R"({"aps":{"alert":"x"}})");
  CHECK(apns(R"({})") == R"({"aps":{}})");
  CHECK(apns(R"({"custom":{}})") == R"({"aps":{}})");
}

TEST_CASE("apns body: the payload's aps wins over an aps inside custom, at custom's position") {
  CHECK(apns(R"({"custom":{"x":1,"aps":{"evil":true},"y":2},"sound":"s"})") ==
        R"({"x":1,"aps":{"sound":"s"},"y":2})");
}

TEST_CASE("apns body: repeated keys keep the first position and the last value; big ints exact") {
  CHECK(apns(R"({"a":1,"b":2,"a":3})") == R"({"aps":{"a":3,"b":2}})");
  CHECK(apns(R"({"custom":{"n":123456789012345678901234567890,"f":1.5,"e":1e16}})") ==
        R"({"n":123456789012345678901234567890,"f":1.5,"e":1e+16,"aps":{}})");
  CHECK(apns(R"({"custom":{"s":"é\n\"q\""}})") == "{\"s\":\"é\\n\\\"q\\\"\",\"aps\":{}}");
}

TEST_CASE("fcm data: every non-string value as Python's str()") {
  struct Row {
    const char* value;     // JSON
    const char* expected;  // Python: str(json.loads(value))
  };
  const Row rows[] = {
      {R"("text")", "text"},
      {"1", "1"},
      {"-7", "-7"},
      {"100000000000000000000", "100000000000000000000"},
      {"-123456789012345678901234567890", "-123456789012345678901234567890"},
      {"1.5", "1.5"},
      {"2.0", "2.0"},
      {"0.1", "0.1"},
      {"1e15", "1000000000000000.0"},
      {"1e16", "1e+16"},
      {"1e-5", "1e-05"},
      {"true", "True"},
      {"false", "False"},
      {"null", "None"},
      {"[]", "[]"},
      {"{}", "{}"},
      {R"({"a":1,"b":[1,"x"]})", "{'a': 1, 'b': [1, 'x']}"},
      {R"(["it's"])", "[\"it's\"]"},
      {R"(["a\"b'c"])", "['a\"b\\'c']"},
      {R"({"n":[100000000000000000000,true,null]})", "{'n': [100000000000000000000, True, None]}"},
      {R"(["\t\u0085é"])", "['\\t\\x85é']"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.value);
    std::string payload = std::string(R"({"k":)") + r.value + "}";
    JsonDoc expected_doc = parse(fcm(payload));
    REQUIRE(expected_doc.root().IsObject());
    const rapidjson::Value* v = api::find_member(expected_doc.root(), "k");
    REQUIRE(v != nullptr);
    REQUIRE(v->IsString());
    CHECK(std::string(v->GetString(), v->GetStringLength()) == r.expected);
  }
}

TEST_CASE("fcm data: key order kept, repeated keys as Python's dict, extra members set last") {
  CHECK(fcm(R"({"b":1,"a":"x","b":2})") == R"({"b":"2","a":"x"})");
  JsonDoc d = parse(R"({"event":"message","realm_name":null,"x":1})");
  CHECK(push::build_fcm_data(d.root(), big_of(d), {{"event", "test"}, {"time", "1700000000"}}) ==
        R"({"event":"test","realm_name":"None","x":"1","time":"1700000000"})");
}

TEST_CASE("fcm priority: mapping from gcm_options and the event") {
  CHECK(priority(R"({"priority":"high"})", R"({"event":"remove"})") == "HIGH");
  CHECK(priority(R"({"priority":"normal"})", R"({"event":"message"})") == "NORMAL");
  CHECK(priority(R"({})", R"({"event":"message"})") == "HIGH");
  CHECK(priority(R"({})", R"({"event":"remove"})") == "NORMAL");
  CHECK(priority(R"({})", R"({})") == "NORMAL");
  CHECK(priority(R"({"priority":null})", R"({"event":"message"})") == "HIGH");
  bool high = false;
  std::string err;
  JsonDoc p = parse(R"({"event":"message"})");
  CHECK(push::fcm_priority(nullptr, p.root(), {}, high, err));
  CHECK(high);
}

TEST_CASE("fcm priority: exact messages for invalid options") {
  CHECK(priority(R"({"priority":"urgent"})", "{}") == "Invalid GCM option to bouncer: priority 'urgent'");
  CHECK(priority(R"({"priority":5})", "{}") == "Invalid GCM option to bouncer: priority 5");
  CHECK(priority(R"({"priority":true})", "{}") == "Invalid GCM option to bouncer: priority True");
  CHECK(priority(R"({"priority":"HIGH"})", "{}") == "Invalid GCM option to bouncer: priority 'HIGH'");
  CHECK(priority(R"({"priority":["high"]})", "{}") == "Invalid GCM option to bouncer: priority ['high']");
  CHECK(priority(R"({"priority":100000000000000000000})", "{}") ==
        "Invalid GCM option to bouncer: priority 100000000000000000000");
  CHECK(priority(R"({"priority":"high","ttl":30,"name":"é"})", "{}") ==
        R"(Invalid GCM options to bouncer: {"ttl":30,"name":"é"})");
  CHECK(priority(R"({"z":{"a":[1,null]},"priority":"normal"})", "{}") ==
        R"(Invalid GCM options to bouncer: {"z":{"a":[1,null]}})");
  // The priority is checked before the other keys.
  CHECK(priority(R"({"priority":"x","ttl":1})", "{}") == "Invalid GCM option to bouncer: priority 'x'");
}

TEST_CASE("test notification: the fixed APNs body") {
  JsonDoc base = parse(R"({"server":"s","realm_name":"Team","event":"x"})");
  push::JsonObjectText p = push::object_text(base.root());
  p.set("event", "\"test\"");
  CHECK(p.text() == R"({"server":"s","realm_name":"Team","event":"test"})");
  CHECK(push::build_test_apns_body(p.text(), "Team", "https://t.example") ==
        R"({"zulip":{"server":"s","realm_name":"Team","event":"test"},"aps":{"alert":{"title":"Test notification","body":"This is a test notification from Team (https://t.example)."},"sound":"default"}})");
}

TEST_CASE("json object text: set replaces in place, also past the indexed size") {
  push::JsonObjectText o;
  for (int i = 0; i < 40; ++i) {
    std::string key = "k";
    key.append(std::to_string(i));
    o.set(key, std::to_string(i));
  }
  o.set("k3", "\"x\"");
  o.set("k30", "\"y\"");
  o.set("new", "1");
  CHECK(o.size() == 41);
  std::string t = o.text();
  CHECK(t.find(R"("k3":"x","k4":4)") != std::string::npos);
  CHECK(t.find(R"("k30":"y","k31":31)") != std::string::npos);
  CHECK(t.substr(t.size() - 9) == R"(,"new":1})");
}

TEST_CASE("apns body and fcm data: repeated keys as Python's dict at every object size") {
  // Sizes around the pairwise scan, the stack table and the hash index; keys of every length
  // class (one byte, under eight, whole words, a word and a tail) and repeats far apart, adjacent
  // and several times over. The expectation is computed the slow, obvious way.
  for (int n : {1, 2, 8, 9, 16, 17, 21, 64, 127, 128, 129, 200}) {
    CAPTURE(n);
    std::vector<std::string> keys;
    for (int i = 0; i < n; ++i) {
      std::string k = std::string(static_cast<size_t>(i % 13) + 1, static_cast<char>('a' + i % 26));
      if (i % 5 == 0 && i > 0) k = keys[static_cast<size_t>(i / 2)];  // a repeat
      if (i % 7 == 3 && i > 0) k = keys[static_cast<size_t>(i - 1)];  // an adjacent repeat
      keys.push_back(k);
    }
    std::string custom = "{";
    std::vector<std::string> order;
    std::vector<int> value_of;
    for (int i = 0; i < n; ++i) {
      const std::string& k = keys[static_cast<size_t>(i)];
      if (i) custom += ",";
      custom.append("\"").append(k).append("\":").append(std::to_string(i));
      size_t at = 0;
      while (at < order.size() && order[at] != k) ++at;
      if (at == order.size()) {
        order.push_back(k);
        value_of.push_back(i);
      } else {
        value_of[at] = i;
      }
    }
    custom += "}";
    std::string want_apns = "{";
    std::string want_fcm = "{";
    for (size_t i = 0; i < order.size(); ++i) {
      const std::string v = std::to_string(value_of[i]);
      want_apns.append("\"").append(order[i]).append("\":").append(v).append(",");
      if (i) want_fcm.append(",");
      want_fcm.append("\"").append(order[i]).append("\":\"").append(v).append("\"");
    }
    want_apns += "\"aps\":{}}";
    want_fcm += "}";
    CHECK(apns("{\"custom\":" + custom + "}") == want_apns);
    CHECK(fcm(custom) == want_fcm);
  }
}

TEST_CASE("fcm data: strings escaped, integers and constants quoted directly") {
  CHECK(fcm(R"({"s":"a\"b\\c\n\u0001é","i":-9223372036854775808,"u":18446744073709551615,)"
            R"("t":true,"f":false,"z":null,"d":0.5,"l":["x"]})") ==
        R"({"s":"a\"b\\c\n\u0001é","i":"-9223372036854775808","u":"18446744073709551615",)"
        R"("t":"True","f":"False","z":"None","d":"0.5","l":"['x']"})");
}

}  // TEST_SUITE
