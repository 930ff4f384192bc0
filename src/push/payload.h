// Payload building for push/notify and push/test_notification (api.md push/notify steps 3–4 and
// push/test_notification): `remove` id truncation, the APNs body (custom hoisted, the rest under
// `aps`), FCM `data` (every value as Python's str()), FCM priority and gcm_options validation.
// Pure functions over a RapidJSON DOM the caller owns; the results are new strings. Objects follow
// Python's dict semantics as json.loads builds them: a repeated key keeps its first position and
// its last value. Nothing here logs: payloads are notification content.
#pragma once
#include <rapidjson/document.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace aloha::push {

// Exact decimal text of integer literals beyond 64 bits, which a RapidJSON DOM holds as doubles
// (api::JsonDoc::big_int_text). A plain function pointer plus context: no allocation per call.
struct BigInts {
  const void* ctx = nullptr;
  const std::string* (*lookup)(const void* ctx, const rapidjson::Value& v) = nullptr;

  const std::string* text(const rapidjson::Value& v) const {
    return (lookup != nullptr && v.IsDouble()) ? lookup(ctx, v) : nullptr;
  }
};

// Compact JSON text of v (no spaces; keys in order, repeated keys as Python's dict; non-ASCII
// unescaped; floats as Python's repr, big integers exact).
void append_json(std::string& out, const rapidjson::Value& v, const BigInts& big = {});
std::string to_json(const rapidjson::Value& v, const BigInts& big = {});
// A JSON string literal (quotes included): `"`, `\` and control characters escaped.
void append_json_string(std::string& out, std::string_view s);

// Python's str(v) / repr(v) with big integers exact (api.md Appendix).
std::string py_str(const rapidjson::Value& v, const BigInts& big = {});
std::string py_repr(const rapidjson::Value& v, const BigInts& big = {});

// An insertion-ordered JSON object under construction whose values are JSON texts; set() of an
// existing key replaces the value in place (Python's `{**a, "k": v}`).
class JsonObjectText {
 public:
  void set(std::string_view key, std::string value_json);
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  // "{"k":v,...}"
  std::string text() const;

 private:
  std::vector<std::pair<std::string, std::string>> entries_;
  std::unordered_map<std::string, size_t> index_;  // built once there are many keys
};

// obj's members (repeated keys as Python's dict) as a JsonObjectText, values as compact JSON.
JsonObjectText object_text(const rapidjson::Value& obj, const BigInts& big = {});

// The largest number of message ids a `remove` event keeps (api.md push/notify step 3).
inline constexpr size_t kMaxRemoveIds = 200;

// Parses "1,2,3" (ASCII digits with an optional leading '-', no spaces or empty items), sorts
// ascending (duplicates kept), keeps the last kMaxRemoveIds and writes them comma-joined in
// canonical decimal (`007` → `7`, `-0` → `0`) into out. Integers of any size. False when invalid.
bool truncate_remove_ids(std::string_view text, std::string& out);

enum class RemoveIds { untouched, rewritten, invalid };
// api.md push/notify step 3 on one payload object (gcm_payload, or apns_payload.custom.zulip):
// when `event` is "remove" and `zulip_message_ids` is present, not null and not "", rewrites it
// in place (invalid: a non-string or malformed value → the caller answers "Invalid
// zulip_message_ids"). Non-objects are untouched.
RemoveIds rewrite_remove_ids(rapidjson::Value& payload, rapidjson::Document::AllocatorType& alloc);

// api.md push/notify step 4: `custom`'s keys at the top level, every other key of apns_payload
// under `aps` (which replaces an `aps` inside custom, at its position). `custom` must be absent or
// an object (the caller checks it first).
std::string build_apns_body(const rapidjson::Value& apns_payload, const BigInts& big = {});

// FCM `data`: each member of `payload` (an object) with its value as Python's str(); `extra`
// members are set after them (replacing same-named ones in place). Returns the JSON object text.
std::string build_fcm_data(const rapidjson::Value& payload, const BigInts& big = {},
                           const std::vector<std::pair<std::string_view, std::string>>& extra = {});

// FCM android.priority from gcm_options (api.md push/notify step 4). gcm_options may be null
// (absent). Returns false with the exact client message in `error`:
// "Invalid GCM option to bouncer: priority <repr>" or "Invalid GCM options to bouncer: <json>".
bool fcm_priority(const rapidjson::Value* gcm_options, const rapidjson::Value& gcm_payload,
                  const BigInts& big, bool& high, std::string& error);

// push/test_notification's APNs body: {"zulip": P, "aps": {"alert": {"title": "Test
// notification", "body": "This is a test notification from <realm_name> (<realm_url>)."},
// "sound": "default"}}; `p_json` is P as JSON text, the names already as Python's str().
std::string build_test_apns_body(std::string_view p_json, std::string_view realm_name,
                                 std::string_view realm_url);

}  // namespace aloha::push
