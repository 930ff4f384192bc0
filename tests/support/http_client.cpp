#include "support/http_client.h"

#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <chrono>
#include <thread>

namespace aloha::test {

std::string url_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '*') {
      out += static_cast<char>(c);
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string form_encode(const Fields& fields) {
  std::string out;
  for (const auto& [k, v] : fields) {
    if (!out.empty()) out += '&';
    out += url_encode(k);
    out += '=';
    out += url_encode(v);
  }
  return out;
}

JsonBody::JsonBody(const std::string& text) : text_(text) {
  doc_.Parse(text_.c_str(), text_.size());
  valid_ = !doc_.HasParseError() && doc_.IsObject();
}

bool JsonBody::has(const char* key) const { return valid_ && doc_.HasMember(key); }

size_t JsonBody::size() const { return valid_ ? doc_.MemberCount() : 0; }

std::vector<std::string> JsonBody::keys() const {
  std::vector<std::string> out;
  if (!valid_) return out;
  for (auto it = doc_.MemberBegin(); it != doc_.MemberEnd(); ++it)
    out.emplace_back(it->name.GetString(), it->name.GetStringLength());
  return out;
}

std::string JsonBody::str(const char* key) const {
  if (!has(key) || !doc_[key].IsString()) return "";
  return std::string(doc_[key].GetString(), doc_[key].GetStringLength());
}

bool JsonBody::is_string(const char* key) const { return has(key) && doc_[key].IsString(); }
bool JsonBody::is_null(const char* key) const { return has(key) && doc_[key].IsNull(); }

std::optional<int64_t> JsonBody::int64(const char* key) const {
  if (!has(key) || !doc_[key].IsInt64()) return std::nullopt;
  return doc_[key].GetInt64();
}

std::optional<double> JsonBody::number(const char* key) const {
  if (!has(key) || !doc_[key].IsNumber()) return std::nullopt;
  return doc_[key].GetDouble();
}

bool JsonBody::is_float(const char* key) const {
  // RapidJSON keeps 59.0 as a double, 59 as an int: that distinguishes the spellings.
  return has(key) && doc_[key].IsDouble();
}

std::optional<bool> JsonBody::boolean(const char* key) const {
  if (!has(key) || !doc_[key].IsBool()) return std::nullopt;
  return doc_[key].GetBool();
}

std::vector<std::string> JsonBody::str_list(const char* key) const {
  std::vector<std::string> out;
  if (!has(key) || !doc_[key].IsArray()) return out;
  for (const auto& v : doc_[key].GetArray())
    if (v.IsString()) out.emplace_back(v.GetString(), v.GetStringLength());
  return out;
}

std::string JsonBody::raw(const char* key) const {
  if (!has(key)) return "";
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  doc_[key].Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

bool send_slowly(HttpConnection& conn, std::string_view bytes, size_t chunk, int delay_ms,
                 int timeout_ms) {
  if (chunk == 0) chunk = 1;
  for (size_t off = 0; off < bytes.size(); off += chunk) {
    if (off > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    if (!conn.send_all(bytes.substr(off, chunk), timeout_ms)) return false;
  }
  return true;
}

}  // namespace aloha::test
