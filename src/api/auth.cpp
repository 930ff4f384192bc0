#include "api/auth.h"

#include "core/crypto.h"
#include "core/encoding.h"

namespace aloha::api {
namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

// Splits on runs of whitespace; false unless there are exactly two parts.
bool split_two(std::string_view s, std::string_view& a, std::string_view& b) {
  std::string_view parts[3];
  size_t n = 0, i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_ws(s[i])) ++i;
    if (i == s.size()) break;
    size_t start = i;
    while (i < s.size() && !is_ws(s[i])) ++i;
    if (n == 2) return false;
    parts[n++] = s.substr(start, i - start);
  }
  if (n != 2) return false;
  a = parts[0];
  b = parts[1];
  return true;
}

}  // namespace

ApiError unauthorized(std::string msg, std::string code) {
  return ApiError{401, std::move(code), std::move(msg), {}, {{"WWW-Authenticate", "Basic realm=\"aloha\""}}};
}

std::shared_ptr<const store::ServerRow> authenticate(Services& svc, const http::Request& req) {
  const std::string* h = req.header("authorization");
  if (!h) throw unauthorized("Missing authorization header for basic auth");
  std::string_view scheme, cred;
  if (!split_two(*h, scheme, cred)) throw unauthorized("Invalid authorization header for basic auth");
  if (!enc::ascii_iequals(scheme, "basic"))
    throw ApiError::bad_request("This endpoint requires HTTP basic authentication.");
  // "<36-char id>:<64-char key>" decodes to 101 bytes: a stack buffer serves the usual case
  // without an allocation; longer credentials (always refused later) take the heap.
  char stack_buf[192];
  std::string heap_buf;
  std::string_view decoded;
  size_t len = 0;
  bool ok;
  if (cred.size() / 4 * 3 <= sizeof stack_buf) {
    ok = enc::base64_decode(cred, stack_buf, sizeof stack_buf, len);
    decoded = std::string_view(stack_buf, len);
  } else {
    ok = enc::base64_decode(cred, heap_buf);
    decoded = heap_buf;
  }
  if (!ok || !enc::valid_utf8(decoded)) throw unauthorized("Invalid authorization header for basic auth");
  size_t colon = decoded.find(':');
  if (colon == std::string::npos || decoded.find(':', colon + 1) != std::string::npos)
    throw unauthorized("Invalid authorization header for basic auth");
  std::string_view user(decoded.data(), colon);
  std::string_view key(decoded.data() + colon + 1, decoded.size() - colon - 1);
  if (user.find('@') != std::string_view::npos)
    throw ApiError::bad_request("Must validate with valid Aloha server API key");

  // Cached: no SQLite lookup and no copy of the row's strings per request.
  std::shared_ptr<const store::ServerRow> row = svc.store.servers().find_for_auth(user);
  if (!row)
    throw unauthorized("Aloha server auth failure: " + std::string(user) +
                       " is not registered -- did you run `manage.py register_server`?");
  // SHA-256 per request only for keys not accepted recently (the loop thread is the only caller).
  thread_local crypto::KeyCheckCache key_cache;
  if (!key_cache.verify(row->id, row->key_hash, key))
    throw unauthorized("Aloha server auth failure: key does not match role " + std::string(user));
  if (row->deactivated) throw unauthorized(kDeactivatedMsg);
  return row;
}

}  // namespace aloha::api
