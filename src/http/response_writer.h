// Response serialization for HTTP/1.1 (RFC 9112 §4, §6) and the JSON error bodies the server
// produces itself (api.md §1). Pure functions; the connection appends into its output buffer.
#pragma once
#include <string>

#include "http/message.h"

namespace aloha::http {

enum class ConnectionHeader { none, close, keep_alive };

// Appends the status line, Content-Type (when the body is non-empty or the status is not 204),
// the response's extra headers, Content-Length (except 1xx/204) and Connection, then the body
// unless `head_request` (HEAD gets the length a GET would have, no body). Extra headers holding
// CR or LF are dropped (no response splitting).
void append_response(std::string& out, const Response& r, bool head_request, ConnectionHeader conn);

// A Response with body {"result":"error","msg":msg,"code":code}. msg and code are plain ASCII
// without quotes or backslashes (server-chosen texts).
Response make_error_response(int status, const char* code, const char* msg);

}  // namespace aloha::http
