#include "control.h"

namespace aloha::mock {

int ControlHandler::handle(std::string_view method, std::string_view path, std::string_view body,
                           std::string& out) {
  if (size_t q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (path == "/mock/stats") {
    if (method != "GET") return out = reason_json("MethodNotAllowed"), 405;
    out = stats_.to_json(router_, script_);
    return 200;
  }
  if (path == "/mock/reset") {
    if (method != "POST") return out = reason_json("MethodNotAllowed"), 405;
    stats_.reset();
    out = "{}";
    return 200;
  }
  if (path == "/mock/script") {
    if (method == "GET") return out = script_.to_json(), 200;
    if (method != "POST") return out = reason_json("MethodNotAllowed"), 405;
    std::string err;
    if (!script_.apply_json(body, err)) return out = reason_json(err), 400;
    out = script_.to_json();
    return 200;
  }
  out = reason_json("BadPath");
  return 404;
}

void ControlHandler::handle(const Request& req, Reply& reply) {
  reply.status = handle(req.method, req.path, req.body, reply.body);
  reply.content_type = "application/json";
}

}  // namespace aloha::mock
