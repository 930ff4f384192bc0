#include "response_parser.h"
#include "core/encoding.h"

#include <cstring>

namespace aloha::loadgen {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Does the comma-separated list `value` contain `token` (case-insensitive)? (RFC 9110 §7.6.1)
bool list_has(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    if (enc::ascii_iequals(trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

ResponseParser::ResponseParser() {
  head_.reserve(kMaxHead);
  body_.reserve(kKeepBody);
}

void ResponseParser::reset_message() {
  head_.clear();
  body_.clear();
  content_length_ = body_left_ = 0;
  status_ = 0;
  keep_alive_ = true;
}

ResponseParser::Result ResponseParser::feed(const char* data, size_t len, size_t& used) {
  used = 0;
  if (state_ == State::head && head_.empty()) reset_message();
  while (used < len) {
    if (state_ == State::head) {
      // Append byte ranges up to the end of the head. Search only the new bytes (plus the 3
      // before them, for a CRLFCRLF split across reads).
      size_t old = head_.size();
      size_t take = len - used;
      if (old + take > kMaxHead) take = kMaxHead - old;
      head_.append(data + used, take);
      size_t from = old >= 3 ? old - 3 : 0;
      size_t end = head_.find("\r\n\r\n", from);
      if (end == std::string::npos) {
        used += take;
        if (head_.size() >= kMaxHead) {
          error_ = "response head too large";
          return Result::error;
        }
        continue;
      }
      size_t head_len = end + 4;
      used += head_len - old;  // bytes of this feed that belong to the head
      head_.resize(head_len);
      Result r = parse_head();
      if (r == Result::error) return r;
      if (body_left_ == 0) {
        head_.clear();  // next feed starts a new message
        return Result::complete;
      }
      state_ = State::body;
    } else {
      size_t take = len - used;
      if (take > body_left_) take = static_cast<size_t>(body_left_);
      if (body_.size() < kKeepBody) {
        size_t keep = kKeepBody - body_.size();
        body_.append(data + used, take < keep ? take : keep);
      }
      used += take;
      body_left_ -= take;
      if (body_left_ == 0) {
        state_ = State::head;
        head_.clear();
        return Result::complete;
      }
    }
  }
  return Result::incomplete;
}

ResponseParser::Result ResponseParser::parse_head() {
  std::string_view head(head_);
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  // status-line = HTTP-version SP status-code SP [ reason-phrase ]
  if (line.size() < 12 || line.substr(0, 5) != "HTTP/" || line[8] != ' ') {
    error_ = "malformed status line";
    return Result::error;
  }
  bool http10 = line.substr(5, 3) == "1.0";
  int status = 0;
  for (size_t k = 9; k < 12; ++k) {
    if (line[k] < '0' || line[k] > '9') {
      error_ = "malformed status code";
      return Result::error;
    }
    status = status * 10 + (line[k] - '0');
  }
  status_ = status;
  keep_alive_ = !http10;
  bool have_length = false;
  size_t pos = eol + 2;
  while (pos < head.size()) {
    size_t next = head.find("\r\n", pos);
    if (next == pos) break;  // the empty line that ends the head
    std::string_view field = head.substr(pos, next - pos);
    pos = next + 2;
    size_t colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      error_ = "malformed header field";
      return Result::error;
    }
    std::string_view name = field.substr(0, colon);
    std::string_view value = trim(field.substr(colon + 1));
    if (enc::ascii_iequals(name, "content-length")) {
      uint64_t v = 0;
      if (value.empty() || value.size() > 15) {
        error_ = "bad content-length";
        return Result::error;
      }
      for (char ch : value) {
        if (ch < '0' || ch > '9') {
          error_ = "bad content-length";
          return Result::error;
        }
        v = v * 10 + static_cast<uint64_t>(ch - '0');
      }
      if (have_length && v != content_length_) {
        error_ = "conflicting content-length";
        return Result::error;
      }
      have_length = true;
      content_length_ = v;
    } else if (enc::ascii_iequals(name, "transfer-encoding")) {
      error_ = "transfer-encoding is not supported";
      return Result::error;
    } else if (enc::ascii_iequals(name, "connection")) {
      if (list_has(value, "close")) keep_alive_ = false;
      if (list_has(value, "keep-alive")) keep_alive_ = true;
    }
  }
  // RFC 9112 §6.3: 1xx, 204 and 304 have no body; anything else needs a length here.
  bool no_body = (status >= 100 && status < 200) || status == 204 || status == 304;
  if (no_body) {
    content_length_ = 0;
  } else if (!have_length) {
    error_ = "response without content-length";
    return Result::error;
  }
  body_left_ = content_length_;
  return Result::complete;
}

}  // namespace aloha::loadgen
