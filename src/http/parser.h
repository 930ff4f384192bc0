// RequestParser: a sans-I/O HTTP/1.1 request parser on top of llhttp. The connection feeds it raw
// bytes; it stops after each event (a complete request, headers that await "100 Continue", an
// error) so pipelined requests come out one at a time and limits are enforced while parsing.
// The parser owns the Request being built until take_request() moves it out.
#pragma once
#include <cstddef>
#include <cstdint>
#include <llhttp.h>

#include "http/message.h"

namespace aloha::http {

struct ParserLimits {
  size_t max_header_bytes = 16 * 1024;  // request line + headers, raw bytes on the wire
  size_t max_headers = 100;
  size_t max_body_bytes = 1024 * 1024;  // after de-chunking
};

// A request the server refuses: status (400 or 413), api.md error code and message. `detail` is
// llhttp's reason for debug logs (static text; never request content).
struct ParseError {
  int status = 0;
  const char* code = "";
  const char* msg = "";
  const char* detail = "";
};

enum class ParseEvent {
  need_more,         // every byte was consumed; nothing complete yet
  expect_continue,   // headers done, the client sent "Expect: 100-continue" and a body follows
  request,           // a complete request is ready: take_request()
  error,             // the input is unusable: error(); the parser stays failed
};

enum class ParsePhase {
  idle,     // between messages (no byte of the next request seen yet)
  headers,  // inside the request line / header block
  body,     // headers complete, body pending
  done,     // no further request may follow (Connection: close, HTTP/1.0, upgrade) or failed
};

class RequestParser {
 public:
  explicit RequestParser(const ParserLimits& limits);
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Parses a prefix of [data, data + len) and returns after the first event; `consumed` is the
  // number of bytes used (call again with the rest). need_more implies consumed == len. Bytes
  // after the last request of a closing connection (phase done) are ignored (consumed, no event).
  ParseEvent feed(const char* data, size_t len, size_t& consumed);

  // After ParseEvent::request: the request (its `remote` is left empty), whether the connection
  // may stay open after the response, and the HTTP version's minor number (0 or 1).
  Request take_request();
  bool keep_alive() const { return last_keep_alive_; }
  int http_minor() const { return last_minor_; }

  const ParseError& error() const { return error_; }
  ParsePhase phase() const { return phase_; }
  // Number of requests whose first byte has been seen (lets the caller time each one).
  uint64_t messages_begun() const { return begun_; }
  // Bytes buffered for the request being parsed (for bounds and tests).
  size_t header_bytes() const { return header_bytes_; }

 private:
  static int on_message_begin(llhttp_t* p) noexcept;
  static int on_url(llhttp_t* p, const char* at, size_t len) noexcept;
  static int on_header_field(llhttp_t* p, const char* at, size_t len) noexcept;
  static int on_header_value(llhttp_t* p, const char* at, size_t len) noexcept;
  static int on_header_field_complete(llhttp_t* p) noexcept;
  static int on_headers_complete(llhttp_t* p) noexcept;
  static int on_body(llhttp_t* p, const char* at, size_t len) noexcept;
  static int on_message_complete(llhttp_t* p) noexcept;

  int fail(int status, const char* code, const char* msg, const char* detail);
  bool store_bytes(size_t n);

  static const llhttp_settings_t settings_;

  ParserLimits limits_;
  llhttp_t parser_;
  Request cur_;
  bool field_done_ = true;     // the next header-field callback starts a new header
  size_t header_bytes_ = 0;    // raw bytes of the current request line + headers
  size_t stored_bytes_ = 0;    // bytes of target + header names/values kept (memory bound)
  bool expect_ = false;        // current request: Expect: 100-continue with a body pending
  bool headers_paused_ = false;
  bool message_done_ = false;
  bool last_keep_alive_ = false;
  int last_minor_ = 1;
  bool failed_ = false;
  uint64_t begun_ = 0;
  ParsePhase phase_ = ParsePhase::idle;
  ParseError error_;
};

}  // namespace aloha::http
