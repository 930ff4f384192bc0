// GET /health: 200 when the database answers (for load balancers and monitoring), else 503.
#include "api/respond.h"
#include "api/router.h"

namespace aloha::api {
namespace {

void health(Services& svc, const ExchangePtr& ex) {
  if (!svc.store.health()) {
    ex->respond(retry_later("database unavailable"));
    return;
  }
  JsonFields f;
  f.str("status", "ok");
  ex->respond(success(f));
}

}  // namespace

void register_server_routes(Router& r);
void register_device_routes(Router& r);
void register_notify_routes(Router& r);

void register_health_routes(Router& r) { r.add("/health", {"GET"}, false, health); }

void register_all_routes(Router& r) {
  register_health_routes(r);
  register_server_routes(r);
  register_device_routes(r);
  register_notify_routes(r);
}

}  // namespace aloha::api
