#include "aloha/app.h"

#include <sqlite3.h>
#include <uv.h>

#include <csignal>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "api/rate_limiter.h"
#include "api/router.h"
#include "core/clock.h"
#include "core/log.h"
#include "h2/connection.h"
#include "http/server.h"
#include "push/notify_service.h"
#include "push/push_setup.h"
#include "store/db.h"
#include "store/store.h"

namespace aloha {

struct App::Impl {
  Config config;
  uv_loop_t loop{};
  std::unique_ptr<store::Store> store;
  std::unique_ptr<api::RateLimiter> limiter;
  std::unique_ptr<push::PusherRegistry> pushers;
  std::unique_ptr<push::NotifyService> notify;
  std::unique_ptr<api::Router> router;
  std::unique_ptr<http::Server> server;
  uv_prepare_t commit_handle{};   // group commit at the end of every loop iteration
  uv_timer_t commit_timer{};      // commits a batch the commit handle deferred (store/db.h)
  uv_timer_t maintenance{};       // limiter pruning, WAL checkpoints
  uv_timer_t trim{};              // gives freed heap pages back after a burst (glibc)
  bool trim_pending = false;      // there were connections since the last trim
  uint64_t trimmed_releases = 0;  // h2::Connection::idle_releases() at the last trim
  uv_signal_t sigterm{}, sigint{};
  bool stopping = false;
  std::string last_stats;
  int exit_code = 0;

  void begin_shutdown(const char* why);
  void close_handles();
};

App::App(Config config) : impl_(std::make_unique<Impl>()) { impl_->config = std::move(config); }
App::~App() = default;

void App::Impl::close_handles() {
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&maintenance), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&trim), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&commit_handle), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&commit_timer), nullptr);
}

void App::Impl::begin_shutdown(const char* why) {
  if (stopping) return;
  stopping = true;
  LOG_INFO("shutting down (%s): finishing in-flight requests", why);
  uv_signal_stop(&sigterm);
  uv_signal_stop(&sigint);
  uv_timer_stop(&maintenance);
  uv_timer_stop(&trim);
  server->shutdown(config.server.shutdown_timeout_ms, [this] {
    // Every reply has been written or its connection closed. Pushes still retrying are reported
    // retry_later (their content is dropped, never persisted), then the last batch is made durable.
    pushers->close_all([this] {
      store->shutdown();
      close_handles();
    });
  });
}

int App::run() {
  Impl& d = *impl_;
  signal(SIGPIPE, SIG_IGN);
  log_set_level(d.config.server.log_level);
  log_set_full_tokens(d.config.server.log_tokens);

#ifdef __GLIBC__
  // One malloc arena: the only other threads are libuv's pool threads (WAL fdatasync, checkpoints,
  // getaddrinfo), which allocate little and rarely; an arena each would keep its own free pages
  // (64 MB reserved, ~40-60 KB resident each) that malloc_trim of the main arena never returns.
  mallopt(M_ARENA_MAX, 1);
  // Fixed thresholds (setting them turns off glibc's dynamic adjustment, which raises the mmap
  // threshold up to 32 MB after the first large free and then keeps such buffers in the heap): a
  // buffer of 64 KB or more (the read buffer, an output burst of a slow peer) is its own mapping
  // and goes back to the kernel when freed. Usual allocations are far below this.
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  mallopt(M_TRIM_THRESHOLD, 128 * 1024);
#endif
  // Before any other SQLite call: sqlite3_soft_heap_limit64 below initialises SQLite, after which
  // its process-wide settings (store/db.cpp configure_sqlite) can no longer change.
  if (!store::configure_sqlite()) LOG_WARN("store: SQLite was initialised early; its allocation settings stay the defaults");
  store::StoreOptions sopts;
  sopts.db.cache_kb = static_cast<int>(d.config.server.database_cache_bytes / 1024);
  sopts.db.defer_commit_ms = static_cast<int>(d.config.server.commit_delay_ms);
  // A soft bound on all of SQLite's heap (both page caches, statements, a large write batch's
  // dirty pages): past it SQLite recycles cache pages instead of growing. It never fails a call.
  sqlite3_soft_heap_limit64((static_cast<sqlite3_int64>(sopts.db.cache_kb) + sopts.db.checkpoint_cache_kb) * 1024 * 2 +
                            (2 << 20));

  // Everything that may block (files, database) happens before the loop runs.
  try {
    d.store = std::make_unique<store::Store>(d.config.server.database, sopts);
  } catch (const store::StoreError& e) {
    LOG_ERROR("cannot open database %s: %s", d.config.server.database.c_str(), e.what());
    return 1;
  }
  if (uv_loop_init(&d.loop) != 0) {
    LOG_ERROR("uv_loop_init failed");
    return 1;
  }
  d.store->attach_loop(&d.loop);  // WAL fsyncs and checkpoints on the thread pool
  const Clock& clock = SystemClock::instance();
  d.limiter = std::make_unique<api::RateLimiter>(d.config.limits.requests_per_minute, clock);
  std::string perr;
  d.pushers = push::build_pushers(&d.loop, d.config, clock, perr);
  if (!d.pushers) {
    LOG_ERROR("%s", perr.c_str());
    d.store->detach_loop();
    uv_loop_close(&d.loop);
    return 2;
  }
  if (d.pushers->empty())
    LOG_WARN("no [apns] or [fcm] credentials configured: devices are registered, nothing is sent");
  d.notify = std::make_unique<push::NotifyService>(clock, d.config.push);
  d.router = std::make_unique<api::Router>(
      api::Services{d.config, *d.store, *d.limiter, clock, &d.loop, d.pushers.get(), d.notify.get()});
  api::register_all_routes(*d.router);

  http::ServerLimits limits;
  limits.max_header_bytes = d.config.limits.max_header_bytes;
  limits.max_headers = d.config.limits.max_headers;
  limits.max_body_bytes = d.config.limits.max_body_bytes;
  limits.header_timeout_ms = d.config.limits.header_timeout_ms;
  limits.body_timeout_ms = d.config.limits.body_timeout_ms;
  limits.idle_timeout_ms = d.config.limits.idle_timeout_ms;
  limits.max_connections = d.config.limits.max_connections;
  api::Router* router = d.router.get();
  d.server = std::make_unique<http::Server>(&d.loop, limits, [router](http::Request&& req, http::Reply reply) {
    router->handle(std::move(req), std::move(reply));
  });

  // Started after the HTTP server's prepare handle on purpose: libuv runs prepare handles in
  // reverse start order, so the batch is committed before that iteration's replies are written.
  // push/notify answers without waiting for a sync, but the deletions it reports must at least be
  // committed (visible to other readers of the database) before the answer leaves.
  // A batch holding only writes nobody waits on (dead-token deletions, counters) may stay open for
  // a few milliseconds so that several iterations' deletions share one commit; commit_timer then
  // commits it even if nothing else wakes the loop. Answers reporting such writes wait for it.
  uv_prepare_init(&d.loop, &d.commit_handle);
  d.commit_handle.data = &d;
  uv_timer_init(&d.loop, &d.commit_timer);
  d.commit_timer.data = &d;
  uv_prepare_start(&d.commit_handle, [](uv_prepare_t* h) {
    auto* self = static_cast<Impl*>(h->data);
    store::Database& db = self->store->db();
    db.flush(/*allow_defer=*/!self->stopping);
    const int64_t due = db.deferred_commit_due_ms();
    auto* timer = reinterpret_cast<uv_handle_t*>(&self->commit_timer);
    if (due >= 0) {
      if (!uv_is_active(timer))
        uv_timer_start(&self->commit_timer, [](uv_timer_t* t) { static_cast<Impl*>(t->data)->store->db().flush(); },
                       static_cast<uint64_t>(due), 0);
    } else if (uv_is_active(timer)) {
      uv_timer_stop(&self->commit_timer);
    }
  });
  uv_timer_init(&d.loop, &d.maintenance);
  d.maintenance.data = &d;
  uv_timer_start(&d.maintenance, [](uv_timer_t* h) {
    auto* self = static_cast<Impl*>(h->data);
    self->limiter->prune();
    self->store->maintenance();
    // Outcome counts per app, logged when they changed (retry entries dropped at retry_max_age
    // show as gave_up).
    std::string line = self->pushers->stats_line();
    if (!line.empty() && line != self->last_stats) {
      LOG_INFO("push stats: %s", line.c_str());
      self->last_stats = std::move(line);
    }
  }, 30'000, 30'000);
  // glibc returns only the top of the heap by itself; pages freed in the middle (request and
  // document buffers of a burst of connections) stay resident until malloc_trim. Once every
  // kTrimIntervalMs while clients are connected, once after, and once after upstream connections
  // gave back their buffers (it walks the free lists: well under a millisecond for a heap of
  // some MB); otherwise a tick only reads two counts.
  uv_timer_init(&d.loop, &d.trim);
  d.trim.data = &d;
  uv_unref(reinterpret_cast<uv_handle_t*>(&d.trim));
#ifdef __GLIBC__
  constexpr uint64_t kTrimIntervalMs = 5'000;
  uv_timer_start(&d.trim, [](uv_timer_t* h) {
    auto* self = static_cast<Impl*>(h->data);
    const bool busy = self->server && self->server->connection_count() > 0;
    // An upstream connection that went quiet gave back its burst buffers (~0.2-0.5 MB each,
    // idle_release_ms after the last push, so usually after the trim that followed the load):
    // those pages are handed back too.
    const uint64_t releases = h2::Connection::idle_releases();
    if (busy || self->trim_pending || releases != self->trimmed_releases) malloc_trim(64 * 1024);
    self->trim_pending = busy;
    self->trimmed_releases = releases;
  }, kTrimIntervalMs, kTrimIntervalMs);
#endif
  uv_signal_init(&d.loop, &d.sigterm);
  uv_signal_init(&d.loop, &d.sigint);
  d.sigterm.data = d.sigint.data = &d;
  uv_signal_start(&d.sigterm, [](uv_signal_t* h, int) { static_cast<Impl*>(h->data)->begin_shutdown("SIGTERM"); }, SIGTERM);
  uv_signal_start(&d.sigint, [](uv_signal_t* h, int) { static_cast<Impl*>(h->data)->begin_shutdown("SIGINT"); }, SIGINT);

  std::string err = d.server->listen(d.config.server.listen_host, d.config.server.listen_port);
  if (!err.empty()) {
    LOG_ERROR("cannot listen on %s:%d: %s", d.config.server.listen_host.c_str(),
              d.config.server.listen_port, err.c_str());
    d.exit_code = 1;
    d.stopping = true;
    d.server.reset();
    Impl* self = &d;
    d.pushers->close_all([self] { self->close_handles(); });
    uv_run(&d.loop, UV_RUN_DEFAULT);
  } else {
    bool v6 = d.config.server.listen_host.find(':') != std::string::npos;
    LOG_INFO("listening on %s%s%s:%d", v6 ? "[" : "", d.config.server.listen_host.c_str(), v6 ? "]" : "",
             d.server->port());
    uv_run(&d.loop, UV_RUN_DEFAULT);
  }
  d.server.reset();
  uv_run(&d.loop, UV_RUN_DEFAULT);  // let the server's last close callbacks run
  d.store->detach_loop();  // no sync/checkpoint request may outlive the loop
  int rc = uv_loop_close(&d.loop);
  if (rc != 0) {
    LOG_ERROR("event loop closed with open handles (%s)", uv_strerror(rc));
    if (d.exit_code == 0) d.exit_code = 1;
  }
  d.store.reset();
  if (d.exit_code == 0) LOG_INFO("stopped");
  return d.exit_code;
}

}  // namespace aloha
