// Minimal incremental HTTP/1.1 response parser for the load tool (RFC 9112): status line, header
// fields, and a body framed by Content-Length (the bouncer always sends one). Chunked framing and
// bodies delimited by connection close are not supported and reported as errors. Bytes are fed as
// they arrive; feed() stops after each complete response so the caller can account for it. The
// head is kept in a bounded buffer (kMaxHead); of the body only the first kKeepBody bytes are
// kept (for error reports), the rest is skipped. No allocation after construction.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace aloha::loadgen {

class ResponseParser {
 public:
  static constexpr size_t kMaxHead = 16 * 1024;
  static constexpr size_t kKeepBody = 512;

  enum class Result { incomplete, complete, error };

  ResponseParser();

  // Consumes bytes of [data, data + len) and sets `used` to how many. Returns complete (after
  // exactly one response; call again with the rest), incomplete (all bytes used, more needed) or
  // error (see error(); the connection is unusable).
  Result feed(const char* data, size_t len, size_t& used);

  // Valid after `complete`, until the next feed().
  int status() const { return status_; }
  bool keep_alive() const { return keep_alive_; }
  std::string_view body() const { return body_; }  // at most kKeepBody bytes
  uint64_t content_length() const { return content_length_; }
  const char* error() const { return error_; }

 private:
  enum class State { head, body };
  Result parse_head();  // head_ holds a full head ending in CRLFCRLF
  void reset_message();

  State state_ = State::head;
  std::string head_;
  std::string body_;
  uint64_t content_length_ = 0;
  uint64_t body_left_ = 0;
  int status_ = 0;
  bool keep_alive_ = true;
  const char* error_ = "";
};

}  // namespace aloha::loadgen
