#include "push/notify_service.h"

#include "core/log.h"

namespace aloha::push {

int64_t day_end_s(int64_t wall_ms) {
  constexpr int64_t kDay = 86'400;
  int64_t s = wall_ms / 1000;
  return (s / kDay + 1) * kDay;
}

NotifyService::NotifyService(const Clock& clock, const Config::Push& cfg)
    : clock_(clock),
      cfg_(cfg),
      guard_(clock, DeadTokenGuardOptions{cfg.dead_token_guard_window_s, cfg.dead_token_guard_min,
                                          cfg.dead_token_guard_share, cfg.warn_interval_ms}),
      warnings_(clock, cfg.warn_interval_ms) {}

std::shared_ptr<Fanout> Fanout::create(uv_loop_t* loop, store::Store& store, NotifyService& service,
                                       FanoutOptions opts, OnAnswer on_answer) {
  return std::make_shared<Fanout>(Key{}, loop, store, service, opts, std::move(on_answer));
}

Fanout::Fanout(Key, uv_loop_t* loop, store::Store& store, NotifyService& service, FanoutOptions opts,
               OnAnswer on_answer)
    : loop_(loop), store_(store), service_(service), opts_(opts), on_answer_(std::move(on_answer)) {}

Fanout::~Fanout() { close_timer(); }

void Fanout::send(Pusher& pusher, PushMessage&& msg) {
  size_t i = entries_.size();
  int kind = msg.platform == Platform::apns ? store::kKindApns : store::kKindFcm;
  entries_.push_back(Entry{&pusher, kind, msg.token});
  // keep_ holds this object until the outcome arrives: late outcomes still delete dead tokens
  // and count.
  bool ok = pusher.send(std::move(msg), opts_.send_deadline_mono_ms,
                        [this, i](const Outcome& o) { on_outcome(i, o); });
  if (!ok) {
    // The caller checked has_capacity() first, so this is a race with another request's sends in
    // the same loop iteration; the send fails visibly instead of being dropped silently.
    ++tally_.refused;
    LOG_WARN("push: %s queue full; a send to %s was refused", pusher.name().c_str(),
             redact_token(entries_[i].token).c_str());
    return;
  }
  ++tally_.sent;
  ++outstanding_;
  if (!keep_) keep_ = shared_from_this();
}

void Fanout::finish() {
  finished_ = true;
  if (outstanding_ == 0) {
    answer();
    return;
  }
  timer_ = new uv_timer_t;
  if (uv_timer_init(loop_, timer_) != 0) {
    delete timer_;
    timer_ = nullptr;
    answer();  // cannot wait: answer with what is known (nothing is lost; sends go on)
    return;
  }
  timer_->data = this;
  if (!keep_) keep_ = shared_from_this();
  uint64_t after = opts_.answer_after_ms > 0 ? static_cast<uint64_t>(opts_.answer_after_ms) : 0;
  uv_timer_start(timer_, [](uv_timer_t* h) noexcept {
    auto* self = static_cast<Fanout*>(h->data);
    std::shared_ptr<Fanout> hold = self->keep_;  // self stays alive until this returns
    self->answer();
    self->maybe_release();
  }, after, 0);
}

void Fanout::on_outcome(size_t i, const Outcome& o) noexcept {
  try {
    const Entry& e = entries_[i];
    switch (o.kind) {
      case OutcomeKind::delivered: {
        ++tally_.delivered;
        service_.guard().record(e.pusher->name(), false);
        if (opts_.count_forwarded) {
          int64_t day = day_end_s(service_.clock().wall_ms());
          store::Counters& c = store_.counters();
          c.add(opts_.server_id, std::nullopt, kPushesForwarded, day, 1);
          if (opts_.realm_id) c.add(opts_.server_id, opts_.realm_id, kPushesForwarded, day, 1);
        }
        break;
      }
      case OutcomeKind::dead_token: {
        if (!service_.guard().record(e.pusher->name(), true)) {
          ++tally_.dead_kept;  // the guard logged the alert
          break;
        }
        int64_t cutoff = dead_token_cutoff_ms(o);
        if (store_.db().write_paused()) {
          // The store is truncating its WAL (a write pause, a few ms): the delete runs when the
          // pause ends. This notify's answer may go out before it and then does not list the
          // token; if the pause queue is full the token stays until its next 410.
          store::Store* st = &store_;
          bool parked = store_.db().park([st, kind = e.kind, token = e.token, cutoff, name = e.pusher->name()] {
            try {
              int n = st->devices().delete_dead(kind, token, cutoff);
              LOG_INFO("push: %s: dead token %s: %d registration(s) deleted after a write pause", name.c_str(),
                       redact_token(token).c_str(), n);
            } catch (const std::exception& ex) {
              LOG_ERROR("push: %s: could not delete dead token %s: %s", name.c_str(), redact_token(token).c_str(),
                        ex.what());
            }
          });
          ++(parked ? tally_.dead_deleted : tally_.dead_kept);
          LOG_INFO("push: %s: dead token %s (%d %s): deletion %s", e.pusher->name().c_str(),
                   redact_token(e.token).c_str(), o.status, o.reason.c_str(),
                   parked ? "deferred to the end of a write pause" : "dropped (pause queue full)");
          break;
        }
        int deleted = 0;
        try {
          // upstreams.md: a dead token is dead for every server that registered it. The delete
          // joins this loop iteration's write batch; nobody waits for it to be durable (the
          // request's answer does not: see push/notify's completion), because losing it in a
          // crash only means the next push to the token gets its 410 again and deletes it again.
          deleted = store_.devices().delete_dead(e.kind, e.token, cutoff);
        } catch (const std::exception& ex) {
          LOG_ERROR("push: %s: could not delete dead token %s: %s", e.pusher->name().c_str(),
                    redact_token(e.token).c_str(), ex.what());
        }
        if (deleted > 0) ++tally_.dead_deleted;
        else ++tally_.dead_kept;  // registered again after the 410 timestamp (or already gone)
        LOG_INFO("push: %s: dead token %s (%d %s): %d registration(s) deleted", e.pusher->name().c_str(),
                 redact_token(e.token).c_str(), o.status, o.reason.c_str(), deleted);
        break;
      }
      default:
        ++tally_.failed;
        LOG_DEBUG("push: %s: send to %s failed: %s (%d %s)", e.pusher->name().c_str(),
                  redact_token(e.token).c_str(), outcome_name(o.kind), o.status, o.reason.c_str());
        break;
    }
  } catch (const std::exception& ex) {
    LOG_ERROR("push: handling an outcome failed: %s", ex.what());
  }
  if (outstanding_ > 0) --outstanding_;
  if (outstanding_ == 0 && finished_) answer();
  maybe_release();  // last: may end this object
}

void Fanout::answer() noexcept {
  if (answered_) return;
  answered_ = true;
  tally_.pending = outstanding_;
  OnAnswer cb = std::move(on_answer_);
  on_answer_ = nullptr;
  try {
    if (cb) cb(tally_);
  } catch (const std::exception& ex) {
    LOG_ERROR("push: answering a request failed: %s", ex.what());
  }
  close_timer();
}

void Fanout::close_timer() noexcept {
  if (timer_ != nullptr) {
    uv_timer_stop(timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(timer_),
             [](uv_handle_t* h) noexcept { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
}

void Fanout::maybe_release() noexcept {
  if (outstanding_ > 0 || timer_ != nullptr) return;
  // Last: dropping the self-reference may end this object.
  std::shared_ptr<Fanout> drop = std::move(keep_);
}

}  // namespace aloha::push
