// Building the JSON bodies of api.md §1: success bodies with extra fields, error bodies from
// ApiError, and the 405/404 shapes. Bodies are assembled as text (they are small and flat), with
// every string passed through json_quote().
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "api/api_error.h"
#include "http/message.h"

namespace aloha::api {

// Accumulates `"key":value` pairs for a success body.
class JsonFields {
 public:
  JsonFields& raw(std::string_view key, std::string_view json_value);
  JsonFields& str(std::string_view key, std::string_view value);
  JsonFields& boolean(std::string_view key, bool v) { return raw(key, v ? "true" : "false"); }
  JsonFields& integer(std::string_view key, int64_t v);
  JsonFields& string_list(std::string_view key, const std::vector<std::string>& items);
  const std::string& text() const { return text_; }  // ",\"k\":v,..." (leading comma when non-empty)
  std::string object() const;                         // "{\"k\":v,...}"

 private:
  std::string text_;
};

// 200 {"result":"success","msg":"",...fields}
http::Response success(const JsonFields& fields = {});
// The error body of api.md §1 with its status and extra headers.
http::Response error_response(const ApiError& e);
// 405 with Allow and {"result":"error","msg":"Method Not Allowed","allowed_methods":[...]}.
http::Response method_not_allowed(const std::vector<std::string>& methods);
http::Response not_found();
// 503 for a store failure: the client retries later; nothing was acknowledged.
http::Response retry_later(std::string_view why);

std::string json_list(const std::vector<std::string>& items);

}  // namespace aloha::api
