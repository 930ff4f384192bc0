// Counters of the mock upstream (served as JSON by GET /mock/stats) and the runtime script that
// POST /mock/script changes. Both are plain data owned by main() and shared by reference with the
// server and the handlers; single-threaded (the loop thread).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aloha::mock {

class Router;

// Scripted APNs behaviour (see the table in main.cpp / README.md).
enum class Behaviour : uint8_t {
  ok,
  unregistered,       // 410 Unregistered + timestamp
  expired_token,      // 410 ExpiredToken + timestamp
  bad_device_token,   // 400 BadDeviceToken
  not_for_topic,      // 400 DeviceTokenNotForTopic
  too_many_requests,  // 429 TooManyRequests
  internal_error,     // 500 InternalServerError
  unavailable,        // 503 ServiceUnavailable
  slow,               // 200 after Script::slow_ms
  reset_stream,       // RST_STREAM INTERNAL_ERROR
  drop_connection,    // TCP close mid-stream
  hang,               // never answer
  goaway,             // GOAWAY, this stream unprocessed
};

const char* behaviour_name(Behaviour b);
// Accepts behaviour_name() spellings and the status shorthands "200", "410", "400", "429", "500",
// "503", plus "rst", "drop". false on anything else.
bool parse_behaviour(std::string_view s, Behaviour& out);

struct Script {
  Behaviour default_behaviour = Behaviour::ok;  // for tokens that match no prefix rule
  int64_t delay_ms = 0;                         // added to every answer (the benchmark's sink delay)
  int64_t slow_ms = 2000;                       // delay of Behaviour::slow

  // Applies a JSON object {"default":"503","delay_ms":20,"slow_ms":100} (every key optional).
  // false + err (nothing changed) on bad JSON, unknown behaviour or negative/huge delays.
  bool apply_json(std::string_view json, std::string& err);
  std::string to_json() const;
};

class Stats {
 public:
  uint64_t connections_accepted = 0;
  uint64_t connections_open = 0;
  uint64_t requests_total = 0;        // completed requests, every path
  uint64_t responses_total = 0;       // responses submitted (any status)
  uint64_t max_concurrent_streams_seen = 0;  // on one connection
  uint64_t open_streams = 0;                 // now, all connections
  uint64_t max_open_streams_total = 0;       // all connections together

  // Outcome keys: "ok", an APNs reason ("Unregistered", "MissingTopic", ...) or a fault name
  // ("reset_stream", "drop_connection", "hang", "goaway", "refused_after_goaway"). The set is small
  // and closed (string literals): keys are compared by value, stored by pointer.
  void count_outcome(const char* key);
  uint64_t outcome(std::string_view key) const;
  void count_status(int status);
  uint64_t status(int status) const;
  void count_route(size_t route_id);  // Router::npos counts as "unknown"
  void stream_opened(uint64_t on_connection);
  void stream_closed();

  // Zeroes every counter except connections_open and open_streams (they describe the present).
  void reset();
  std::string to_json(const Router& router, const Script& script) const;

 private:
  std::vector<std::pair<const char*, uint64_t>> outcomes_;
  uint64_t statuses_[600] = {};
  std::vector<uint64_t> routes_;
  uint64_t unknown_route_ = 0;
};

}  // namespace aloha::mock
