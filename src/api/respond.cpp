#include "api/respond.h"

#include <algorithm>
#include <charconv>
#include <unordered_map>
#include <unordered_set>

#include "api/params.h"

namespace aloha::api {

// Fields are appended in place: one growing buffer per body, no temporary per key or value.
std::string& JsonFields::raw_into(std::string_view key) {
  if (text_.empty()) {
    text_.reserve(kInitialCapacity);
    text_ = kHead;
  }
  text_ += ',';
  append_json_quoted(text_, key);
  text_ += ':';
  return text_;
}

JsonFields& JsonFields::raw(std::string_view key, std::string_view json_value) {
  raw_into(key);
  text_ += json_value;
  return *this;
}

JsonFields& JsonFields::str(std::string_view key, std::string_view value) {
  raw_into(key);
  append_json_quoted(text_, value);
  return *this;
}

JsonFields& JsonFields::integer(std::string_view key, int64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  return raw(key, std::string_view(buf, static_cast<size_t>(res.ptr - buf)));
}

JsonFields& JsonFields::string_list(std::string_view key, const std::vector<std::string>& items) {
  return raw(key, json_list(items));
}

std::string JsonFields::object() const {
  std::string out = "{";
  const std::string_view t = text();
  if (!t.empty()) out.append(t.substr(1));
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
  const std::string_view t = fields.text();
  r.body.reserve(JsonFields::kHead.size() + t.size() + 1);
  r.body.append(JsonFields::kHead);
  r.body += t;
  r.body += '}';
  return r;
}

http::Response success(JsonFields&& fields) {
  http::Response r;
  r.status = 200;
  if (fields.text_.empty()) {
    r.body.reserve(JsonFields::kHead.size() + 1);
    r.body.append(JsonFields::kHead);
  } else {
    r.body = std::move(fields.text_);  // already starts with the head: no copy, no insert
  }
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

namespace {

std::string_view view_of(const rapidjson::Value& v) { return {v.GetString(), v.GetStringLength()}; }

char lower_ascii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// normalize_token(kApns, a) == normalize_token(kApns, b), without building either.
bool same_apns_token(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower_ascii(a[i]) != lower_ascii(b[i])) return false;
  return true;
}

bool has_row(const std::vector<store::DeviceRow>& rows, int kind, std::string_view token) {
  for (const auto& r : rows) {
    if (r.kind != kind) continue;
    if (kind == store::kKindApns ? same_apns_token(r.token, token) : r.token == token) return true;
  }
  return false;
}

// Both token-list forms (request document, RequestTokens) through one interface: size() and
// operator[] giving a string_view. The document form reads the DOM in place.
class ValueList {
 public:
  explicit ValueList(const rapidjson::Value& v) : v_(v) {}
  size_t size() const { return v_.Size(); }
  std::string_view operator[](size_t i) const { return view_of(v_[static_cast<rapidjson::SizeType>(i)]); }

 private:
  const rapidjson::Value& v_;
};

// Small lists: O(items * (items + rows)) comparisons, views into the token lists, no container
// unless a token is listed.
template <class L>
void listed_linear(const std::vector<store::DeviceRow>& rows, const L& android, const L& apple,
                   std::vector<std::string_view>& a, std::vector<std::string_view>& b) {
  for (size_t k = 0; k < android.size(); ++k)
    if (!has_row(rows, store::kKindFcm, android[k])) a.push_back(android[k]);
  for (size_t k = 0; k < apple.size(); ++k) {
    const std::string_view s = apple[k];
    size_t first = 0;
    while (first < k && !same_apns_token(apple[first], s)) ++first;
    if (first == k) {
      if (!has_row(rows, store::kKindApns, s)) b.push_back(s);
    } else if (apple[first] != s) {
      b.push_back(s);  // a case-duplicate of an earlier spelling, reported whether or not a row exists
    }
  }
}

// Long lists: hash sets, linear in the sizes.
template <class L>
void listed_hashed(const std::vector<store::DeviceRow>& rows, const L& android, const L& apple,
                   std::vector<std::string_view>& a, std::vector<std::string_view>& b) {
  std::unordered_set<std::string_view> fcm_tokens;
  std::unordered_set<std::string> apns_norms;
  for (const auto& r : rows) {
    if (r.kind == store::kKindFcm) fcm_tokens.insert(r.token);
    else if (r.kind == store::kKindApns) apns_norms.insert(store::normalize_token(r.kind, r.token));
  }
  for (size_t k = 0; k < android.size(); ++k)
    if (!fcm_tokens.count(android[k])) a.push_back(android[k]);
  std::unordered_map<std::string, std::string_view> first_spelling;
  for (size_t k = 0; k < apple.size(); ++k) {
    const std::string_view s = apple[k];
    std::string lower = store::normalize_token(store::kKindApns, s);
    auto [it, fresh] = first_spelling.emplace(lower, s);
    if (fresh) {
      if (!apns_norms.count(lower)) b.push_back(s);
    } else if (it->second != s) {
      b.push_back(s);
    }
  }
}

// Sorted by unsigned bytes (std::string_view compares as char_traits<char>, i.e. unsigned):
// code point order for UTF-8 (api.md step 6); duplicates dropped.
void append_sorted_list(std::string& out, std::vector<std::string_view>& items) {
  std::sort(items.begin(), items.end());
  items.erase(std::unique(items.begin(), items.end()), items.end());
  out += '[';
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    append_json_quoted(out, items[i]);
  }
  out += ']';
}

template <class L>
void append_deleted(std::string& out, const std::vector<store::DeviceRow>& rows_after, const L& android,
                    const L& apple, size_t linear_max) {
  std::vector<std::string_view> a, b;
  if (android.size() <= linear_max && apple.size() <= linear_max)
    listed_linear(rows_after, android, apple, a, b);
  else
    listed_hashed(rows_after, android, apple, a, b);
  out += "{\"android_devices\":";
  append_sorted_list(out, a);
  out += ",\"apple_devices\":";
  append_sorted_list(out, b);
  out += '}';
}

}  // namespace

void append_deleted_devices(std::string& out, const std::vector<store::DeviceRow>& rows_after,
                            const rapidjson::Value& android, const rapidjson::Value& apple,
                            size_t linear_max) {
  append_deleted(out, rows_after, ValueList(android), ValueList(apple), linear_max);
}

void append_deleted_devices(std::string& out, const std::vector<store::DeviceRow>& rows_after,
                            const RequestTokens& tokens, size_t linear_max) {
  append_deleted(out, rows_after, tokens.android(), tokens.apple(), linear_max);
}

RequestTokens::RequestTokens(const rapidjson::Value& android, const rapidjson::Value& apple) {
  const size_t n = android.Size() + apple.Size();
  if (n == 0) return;
  size_t bytes = 0;
  for (const auto& t : android.GetArray()) bytes += t.GetStringLength();
  for (const auto& t : apple.GetArray()) bytes += t.GetStringLength();
  // Sized once: one allocation each for the text and the offsets.
  text_.reserve(bytes);
  ends_.reserve(n);
  for (const auto& t : android.GetArray()) {
    text_.append(t.GetString(), t.GetStringLength());
    ends_.push_back(text_.size());
  }
  for (const auto& t : apple.GetArray()) {
    text_.append(t.GetString(), t.GetStringLength());
    ends_.push_back(text_.size());
  }
  n_android_ = android.Size();
}

std::string_view RequestTokens::List::operator[](size_t i) const {
  const size_t k = first_ + i;
  const size_t begin = k == 0 ? 0 : owner_->ends_[k - 1];
  return std::string_view(owner_->text_).substr(begin, owner_->ends_[k] - begin);
}

}  // namespace aloha::api
