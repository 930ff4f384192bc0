// Router: maps a request to its endpoint (exact path match), answers 404/405/OPTIONS, runs Basic
// authentication and the per-server rate limit for authenticated routes (api.md §1–2), and turns
// ApiError into error bodies. Endpoint groups register their routes from their own files.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "api/rate_limiter.h"
#include "core/clock.h"
#include "core/config.h"
#include "http/message.h"
#include "http/server.h"
#include "push/notify_service.h"
#include "push/pusher.h"
#include "store/store.h"

namespace aloha::api {

// What endpoints may use. Owned by the App; outlives the router.
struct Services {
  const Config& config;
  store::Store& store;
  RateLimiter& limiter;
  const Clock& clock;
  uv_loop_t* loop = nullptr;                  // for endpoint timers (notify deadline)
  push::PusherRegistry* pushers = nullptr;    // never null once the app runs (may be empty)
  push::NotifyService* notify = nullptr;      // dead-token guard and warning state
};

// One request being answered. Shared so an endpoint can answer after the batch commit.
struct Exchange {
  Exchange() = default;
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;
  ~Exchange() { http::recycle_request(std::move(req)); }  // buffers reused by the next request

  http::Request req;
  http::Reply reply;
  std::shared_ptr<const store::ServerRow> server;  // set for authenticated routes
  std::optional<http::RateLimitHeaders> rate_limit;  // X-RateLimit-* on every authenticated response
  bool answered = false;

  // Sends now (adds the rate-limit headers and the server id for the access log).
  void respond(http::Response&& r);
};
using ExchangePtr = std::shared_ptr<Exchange>;

// Sends r once the current batch transaction is durable (api.md: a 200 registration survives a
// crash); a failed commit answers 503 instead, so nothing unsaved is ever acknowledged.
void respond_after_commit(store::Store& store, const ExchangePtr& ex, http::Response&& r);
using Endpoint = std::function<void(Services&, const ExchangePtr&)>;

// Whether an endpoint writes to the store. Requests to writing routes that arrive during a store
// write pause (store::Database::write_paused) wait, parked, until it ends; when too many wait
// already they are answered 503 retry-later.
enum class Writes { no, yes };

class Router {
 public:
  explicit Router(Services services) : svc_(services) {}

  // methods: e.g. {"POST"} or {"GET"} (GET routes also answer HEAD). authenticated: HTTP Basic.
  void add(std::string path, std::vector<std::string> methods, bool authenticated, Endpoint fn,
           Writes writes = Writes::no);

  // The http::Server handler.
  void handle(http::Request&& req, http::Reply reply);

 private:
  struct Route {
    std::vector<std::string> methods;  // sorted, HEAD included for GET routes
    bool authenticated;
    Endpoint fn;
    Writes writes = Writes::no;
  };
  void run(const Route& route, const ExchangePtr& ex);
  void dispatch(const Route& route, const ExchangePtr& ex);

  Services svc_;
  std::unordered_map<std::string, Route> routes_;
};

// Registers every endpoint group.
void register_all_routes(Router& router);

}  // namespace aloha::api
