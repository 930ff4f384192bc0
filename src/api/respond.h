// Building the JSON bodies of api.md §1: success bodies with extra fields, error bodies from
// ApiError, the 405/404 shapes and push/notify's deleted_devices. Bodies are assembled as text
// (they are small and flat), appended in place into one buffer where possible, with every string
// passed through json_quote() / append_json_quoted().
#pragma once
#include <rapidjson/document.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "api/api_error.h"
#include "http/message.h"
#include "store/devices.h"

namespace aloha::api {

// Accumulates `"key":value` pairs for a success body.
class JsonFields {
 public:
  JsonFields& raw(std::string_view key, std::string_view json_value);
  JsonFields& str(std::string_view key, std::string_view value);
  JsonFields& boolean(std::string_view key, bool v) { return raw(key, v ? "true" : "false"); }
  JsonFields& integer(std::string_view key, int64_t v);
  JsonFields& string_list(std::string_view key, const std::vector<std::string>& items);
  // Appends `,"key":` and returns the buffer, to which the caller appends exactly one JSON value.
  std::string& raw_into(std::string_view key);
  // ",\"k\":v,..." (leading comma when non-empty)
  std::string_view text() const { return std::string_view(text_).substr(text_.empty() ? 0 : kHead.size()); }
  std::string object() const;  // "{\"k\":v,...}"

  // The head of a success body; the buffer starts with it so success(JsonFields&&) can hand the
  // buffer over as the body without moving the fields.
  static constexpr std::string_view kHead = "{\"result\":\"success\",\"msg\":\"\"";

 private:
  friend http::Response success(JsonFields&& fields);
  // Typical success bodies (push/notify's with deleted_devices and a realm object) fit: one
  // allocation per body.
  static constexpr size_t kInitialCapacity = 256;
  std::string text_;  // empty, or kHead followed by the fields
};

// 200 {"result":"success","msg":"",...fields}
http::Response success(const JsonFields& fields = {});
// The same, reusing the fields' buffer for the body (no copy when its capacity suffices).
http::Response success(JsonFields&& fields);
// The error body of api.md §1 with its status and extra headers.
http::Response error_response(const ApiError& e);
// 405 with Allow and {"result":"error","msg":"Method Not Allowed","allowed_methods":[...]}.
http::Response method_not_allowed(const std::vector<std::string>& methods);
http::Response not_found();
// 503 for a store failure: the client retries later; nothing was acknowledged.
http::Response retry_later(std::string_view why);

std::string json_list(const std::vector<std::string>& items);

// push/notify step 6 (api.md): appends {"android_devices":[...],"apple_devices":[...]} to `out`,
// the request's tokens (`android`, `apple`: JSON arrays of strings) that have no row in
// `rows_after`. Android tokens compare exactly, APNs tokens case-insensitively; an APNs token
// that repeats an earlier one in another spelling is always listed. Lists are sorted by bytes
// (code point order) without duplicates. Lists of at most `linear_max` items are matched by
// linear scans (no allocation when nothing is listed); longer ones through hash sets.
inline constexpr size_t kDeletedDevicesLinearMax = 16;
void append_deleted_devices(std::string& out, const std::vector<store::DeviceRow>& rows_after,
                            const rapidjson::Value& android, const rapidjson::Value& apple,
                            size_t linear_max = kDeletedDevicesLinearMax);

// push/notify's android_devices and apple_devices copied out of the request document, so that
// the answer, given when the upstreams have answered, needs neither the document nor the body
// (a notify in flight then holds a few bytes per token instead of some KB). All tokens share one
// buffer; empty lists allocate nothing.
class RequestTokens {
 public:
  // A view of one of the two lists; valid while its RequestTokens lives and is not changed.
  class List {
   public:
    size_t size() const { return n_; }
    std::string_view operator[](size_t i) const;

   private:
    friend class RequestTokens;
    List(const RequestTokens* owner, size_t first, size_t n) : owner_(owner), first_(first), n_(n) {}
    const RequestTokens* owner_;
    size_t first_;
    size_t n_;
  };

  RequestTokens() = default;
  // Both must be JSON arrays of strings (push/notify checks them with expect_items first).
  RequestTokens(const rapidjson::Value& android, const rapidjson::Value& apple);

  List android() const { return List(this, 0, n_android_); }
  List apple() const { return List(this, n_android_, ends_.size() - n_android_); }

 private:
  std::string text_;          // every token, back to back (android first)
  std::vector<size_t> ends_;  // end offset of each token in text_
  size_t n_android_ = 0;
};

// The same as the rapidjson form, from copied lists.
void append_deleted_devices(std::string& out, const std::vector<store::DeviceRow>& rows_after,
                            const RequestTokens& tokens, size_t linear_max = kDeletedDevicesLinearMax);

}  // namespace aloha::api
