#include "exchange.h"

namespace aloha::mock {

const std::string* Request::header(std::string_view lname) const {
  for (size_t i = 0; i < header_count; ++i)
    if (headers[i].name == lname) return &headers[i].value;
  return nullptr;
}

void Request::add_header(std::string_view name, std::string_view value) {
  if (header_count >= kMaxHeaders) return;
  if (header_count == headers.size()) headers.emplace_back();
  // assign() reuses the capacity left by earlier requests on this pooled object.
  headers[header_count].name.assign(name);
  headers[header_count].value.assign(value);
  ++header_count;
}

void Request::add_body(const uint8_t* data, size_t len) {
  body_bytes += len;
  size_t room = body.size() < kMaxBodyKept ? kMaxBodyKept - body.size() : 0;
  if (len > room) len = room;  // keep counting, stop storing: only the size matters past 4 KB
  body.append(reinterpret_cast<const char*>(data), len);
}

void Request::clear() {
  method.clear();
  path.clear();
  header_count = 0;
  body.clear();
  body_bytes = 0;
  client_cert_verified = false;
}

void Reply::clear() {
  action = Action::respond;
  status = 200;
  apns_id.clear();
  content_type.clear();
  retry_after.clear();
  body.clear();
  delay_ms = 0;
  token_auth_success = false;
  goaway_debug.clear();
}

size_t Router::add(std::string prefix, std::string name, Handler* handler) {
  routes_.push_back({std::move(prefix), std::move(name), handler});
  return routes_.size() - 1;
}

size_t Router::find(std::string_view path) const {
  for (size_t i = 0; i < routes_.size(); ++i)
    if (path.substr(0, routes_[i].prefix.size()) == routes_[i].prefix) return i;
  return npos;
}

std::string reason_json(std::string_view reason) {
  std::string out;
  out.reserve(reason.size() + 14);
  out.append("{\"reason\":\"");
  for (char c : reason) {
    // Reasons are identifiers, but control-endpoint errors may quote user input: escape.
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(static_cast<unsigned char>(c) < 0x20 ? ' ' : c);
  }
  out.append("\"}");
  return out;
}

}  // namespace aloha::mock
