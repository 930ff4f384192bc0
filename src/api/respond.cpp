#include "api/respond.h"

#include <cstdio>

#include "api/params.h"

namespace aloha::api {

JsonFields& JsonFields::raw(std::string_view key, std::string_view json_value) {
  text_ += ',';
  text_ += json_quote(key);
  text_ += ':';
  text_ += json_value;
  return *this;
}

JsonFields& JsonFields::str(std::string_view key, std::string_view value) {
  return raw(key, json_quote(value));
}

JsonFields& JsonFields::integer(std::string_view key, int64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  return raw(key, buf);
}

JsonFields& JsonFields::string_list(std::string_view key, const std::vector<std::string>& items) {
  return raw(key, json_list(items));
}

std::string JsonFields::object() const {
  std::string out = "{";
  if (!text_.empty()) out.append(text_, 1, std::string::npos);
  out += '}';
  return out;
}

std::string json_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += json_quote(items[i]);
  }
  out += ']';
  return out;
}

http::Response success(const JsonFields& fields) {
  http::Response r;
  r.status = 200;
  r.body.reserve(32 + fields.text().size());
  r.body = "{\"result\":\"success\",\"msg\":\"\"";
  r.body += fields.text();
  r.body += '}';
  return r;
}

http::Response error_response(const ApiError& e) {
  http::Response r;
  r.status = e.status;
  r.body = "{\"result\":\"error\",\"msg\":";
  r.body += json_quote(e.msg);
  r.body += ",\"code\":";
  r.body += json_quote(e.code);
  for (const auto& [k, v] : e.extra) {
    r.body += ',';
    r.body += json_quote(k);
    r.body += ':';
    r.body += v;
  }
  r.body += '}';
  for (const auto& [k, v] : e.headers) r.add_header(k, v);
  return r;
}

http::Response method_not_allowed(const std::vector<std::string>& methods) {
  http::Response r;
  r.status = 405;
  std::string allow;
  for (size_t i = 0; i < methods.size(); ++i) {
    if (i) allow += ", ";
    allow += methods[i];
  }
  r.add_header("Allow", allow);
  r.body = "{\"result\":\"error\",\"msg\":\"Method Not Allowed\",\"allowed_methods\":" +
           json_list(methods) + "}";
  return r;
}

http::Response not_found() {
  return error_response(ApiError{404, "NOT_FOUND", "Not Found", {}, {}});
}

http::Response retry_later(std::string_view why) {
  ApiError e{503, "SERVICE_UNAVAILABLE", std::string(why), {}, {{"Retry-After", "1"}}};
  return error_response(e);
}

}  // namespace aloha::api
