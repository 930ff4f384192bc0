// Test-side HTTP helpers on top of src/cli/http_client.h: form encoding, JSON bodies (RapidJSON)
// with small typed accessors, and raw-socket helpers for slow-client and pipelining tests.
// Everything is blocking and bounded by the timeouts passed in.
#pragma once
#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/http_client.h"

namespace aloha::test {

using cli::HttpConnection;
using cli::HttpResult;
using Fields = std::vector<std::pair<std::string, std::string>>;

// application/x-www-form-urlencoded (WHATWG): unreserved bytes kept, space as '+', rest %XX.
std::string url_encode(std::string_view s);
std::string form_encode(const Fields& fields);

// A parsed response body. valid() is true when the body is a JSON object.
class JsonBody {
 public:
  explicit JsonBody(const std::string& text);
  bool valid() const { return valid_; }
  const rapidjson::Document& doc() const { return doc_; }

  bool has(const char* key) const;
  size_t size() const;                       // number of top-level keys (0 when not an object)
  std::vector<std::string> keys() const;     // top-level keys in document order
  std::string str(const char* key) const;    // "" when absent or not a string
  bool is_string(const char* key) const;
  bool is_null(const char* key) const;
  std::optional<int64_t> int64(const char* key) const;
  std::optional<double> number(const char* key) const;   // ints and floats
  bool is_float(const char* key) const;                   // a JSON number written with . or e
  std::optional<bool> boolean(const char* key) const;
  std::vector<std::string> str_list(const char* key) const;  // string items; empty when absent
  std::string raw(const char* key) const;    // the value as compact JSON, "" when absent

 private:
  rapidjson::Document doc_;
  std::string text_;
  bool valid_ = false;
};

// Sends bytes in pieces of `chunk` with `delay_ms` between them (slow-client tests). false when a
// write failed (e.g. the server closed the connection).
bool send_slowly(HttpConnection& conn, std::string_view bytes, size_t chunk, int delay_ms,
                 int timeout_ms);

}  // namespace aloha::test
