#include "stats.h"

#include <rapidjson/document.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "exchange.h"

namespace aloha::mock {

namespace {
struct Name {
  Behaviour b;
  const char* name;
};
constexpr Name kNames[] = {
    {Behaviour::ok, "ok"},
    {Behaviour::unregistered, "unregistered"},
    {Behaviour::expired_token, "expired_token"},
    {Behaviour::bad_device_token, "bad_device_token"},
    {Behaviour::not_for_topic, "not_for_topic"},
    {Behaviour::too_many_requests, "too_many_requests"},
    {Behaviour::internal_error, "internal_error"},
    {Behaviour::unavailable, "unavailable"},
    {Behaviour::slow, "slow"},
    {Behaviour::reset_stream, "reset_stream"},
    {Behaviour::drop_connection, "drop_connection"},
    {Behaviour::hang, "hang"},
    {Behaviour::goaway, "goaway"},
};
constexpr Name kShorthands[] = {
    {Behaviour::ok, "200"},           {Behaviour::unregistered, "410"},
    {Behaviour::bad_device_token, "400"}, {Behaviour::too_many_requests, "429"},
    {Behaviour::internal_error, "500"}, {Behaviour::unavailable, "503"},
    {Behaviour::reset_stream, "rst"},  {Behaviour::drop_connection, "drop"},
};

// Appends s as a JSON string; keys here are ASCII identifiers or route prefixes, but escape
// anyway so a strange route name cannot break the document.
void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out.append(buf);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

void append_kv(std::string& out, std::string_view key, uint64_t v, bool comma = true) {
  append_json_string(out, key);
  char buf[32];
  std::snprintf(buf, sizeof buf, ":%" PRIu64, v);
  out.append(buf);
  if (comma) out.push_back(',');
}
}  // namespace

const char* behaviour_name(Behaviour b) {
  for (const auto& n : kNames)
    if (n.b == b) return n.name;
  return "?";
}

bool parse_behaviour(std::string_view s, Behaviour& out) {
  for (const auto& n : kNames)
    if (s == n.name) return out = n.b, true;
  for (const auto& n : kShorthands)
    if (s == n.name) return out = n.b, true;
  return false;
}

bool Script::apply_json(std::string_view json, std::string& err) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject()) return err = "body must be a JSON object", false;
  Script next = *this;
  for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
    std::string_view key(it->name.GetString(), it->name.GetStringLength());
    const auto& v = it->value;
    if (key == "default") {
      if (!v.IsString() ||
          !parse_behaviour(std::string_view(v.GetString(), v.GetStringLength()),
                           next.default_behaviour))
        return err = "unknown behaviour in \"default\"", false;
    } else if (key == "delay_ms" || key == "slow_ms") {
      // Bounded so a typo cannot park every stream for days.
      if (!v.IsInt64() || v.GetInt64() < 0 || v.GetInt64() > 600'000)
        return err = std::string(key) + " must be an integer in 0..600000", false;
      (key == "delay_ms" ? next.delay_ms : next.slow_ms) = v.GetInt64();
    } else {
      return err = "unknown key \"" + std::string(key) + "\"", false;
    }
  }
  *this = next;
  return true;
}

std::string Script::to_json() const {
  char buf[160];
  std::snprintf(buf, sizeof buf, "{\"default\":\"%s\",\"delay_ms\":%" PRId64 ",\"slow_ms\":%" PRId64 "}",
                behaviour_name(default_behaviour), delay_ms, slow_ms);
  return buf;
}

void Stats::count_outcome(const char* key) {
  for (auto& [k, v] : outcomes_) {
    // Pointer equality first: the keys are literals, so the common case skips strcmp.
    if (k == key || std::strcmp(k, key) == 0) {
      ++v;
      return;
    }
  }
  outcomes_.emplace_back(key, 1);
}

uint64_t Stats::outcome(std::string_view key) const {
  for (const auto& [k, v] : outcomes_)
    if (key == k) return v;
  return 0;
}

void Stats::count_status(int s) {
  ++responses_total;
  if (s >= 0 && s < 600) ++statuses_[s];
}

uint64_t Stats::status(int s) const { return s >= 0 && s < 600 ? statuses_[s] : 0; }

void Stats::count_route(size_t route_id) {
  ++requests_total;
  if (route_id == Router::npos) {
    ++unknown_route_;
    return;
  }
  if (route_id >= routes_.size()) routes_.resize(route_id + 1, 0);
  ++routes_[route_id];
}

void Stats::stream_opened(uint64_t on_connection) {
  ++open_streams;
  if (on_connection > max_concurrent_streams_seen) max_concurrent_streams_seen = on_connection;
  if (open_streams > max_open_streams_total) max_open_streams_total = open_streams;
}

void Stats::stream_closed() {
  if (open_streams > 0) --open_streams;
}

void Stats::reset() {
  connections_accepted = 0;
  requests_total = 0;
  responses_total = 0;
  max_concurrent_streams_seen = 0;
  max_open_streams_total = open_streams;
  for (auto& o : outcomes_) o.second = 0;
  for (auto& s : statuses_) s = 0;
  for (auto& r : routes_) r = 0;
  unknown_route_ = 0;
}

std::string Stats::to_json(const Router& router, const Script& script) const {
  std::string out;
  out.reserve(1024);
  out.push_back('{');
  append_kv(out, "connections_accepted", connections_accepted);
  append_kv(out, "connections_open", connections_open);
  append_kv(out, "requests_total", requests_total);
  append_kv(out, "responses_total", responses_total);
  append_kv(out, "max_concurrent_streams_seen", max_concurrent_streams_seen);
  append_kv(out, "open_streams", open_streams);
  append_kv(out, "max_open_streams_total", max_open_streams_total);
  out.append("\"outcomes\":{");
  bool first = true;
  for (const auto& [k, v] : outcomes_) {
    if (v == 0) continue;
    if (!first) out.push_back(',');
    first = false;
    append_kv(out, k, v, false);
  }
  out.append("},\"statuses\":{");
  first = true;
  for (int s = 0; s < 600; ++s) {
    if (statuses_[s] == 0) continue;
    if (!first) out.push_back(',');
    first = false;
    append_kv(out, std::to_string(s), statuses_[s], false);
  }
  out.append("},\"paths\":{");
  for (size_t i = 0; i < router.size(); ++i)
    append_kv(out, router.name(i), i < routes_.size() ? routes_[i] : 0);
  append_kv(out, "unknown", unknown_route_, false);
  out.append("},\"script\":").append(script.to_json()).push_back('}');
  return out;
}

}  // namespace aloha::mock
