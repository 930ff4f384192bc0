// Control and statistics endpoint of the mock upstream, under /mock/ on the HTTP/2 server (and on
// the optional plain HTTP/1.1 --http1-control-port): GET /mock/stats, POST /mock/reset,
// GET|POST /mock/script. Shares Stats, Script and Router with the server (all owned by main()).
#pragma once
#include <string>
#include <string_view>

#include "exchange.h"
#include "stats.h"

namespace aloha::mock {

class ControlHandler final : public Handler {
 public:
  ControlHandler(Stats& stats, Script& script, const Router& router)
      : stats_(stats), script_(script), router_(router) {}

  void handle(const Request& req, Reply& reply) override;
  // Transport-independent core, also used by the HTTP/1.1 control port. Returns the status and
  // fills body (JSON).
  int handle(std::string_view method, std::string_view path, std::string_view body,
             std::string& out);

 private:
  Stats& stats_;
  Script& script_;
  const Router& router_;
};

}  // namespace aloha::mock
