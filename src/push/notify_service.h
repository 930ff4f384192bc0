// The sending half of push/notify and push/test_notification: NotifyService is the long-lived
// state (the dead-token guard, rate-limited warnings) and Fanout is one request's sends to
// APNs and FCM, all started at once, answered when every send has an outcome or at the answer
// deadline, whichever is first. Sends still retrying then go on inside their pushers (bounded by
// their own queues and the send deadline); their late outcomes still delete dead tokens and count
// forwarded pushes. Content lives only in the PushMessages handed to the pushers: never stored,
// never logged. Everything runs on the loop thread; callbacks never throw.
#pragma once
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "push/dead_tokens.h"
#include "push/pusher.h"
#include "store/store.h"

namespace aloha::push {

inline constexpr const char* kPushesReceived = "mobile_pushes_received::day";
inline constexpr const char* kPushesForwarded = "mobile_pushes_forwarded::day";

// End of the UTC day containing `wall_ms`, in epoch seconds: the end_time of a ::day count.
int64_t day_end_s(int64_t wall_ms);

// Lives as long as the app (one per configuration); holds no store or loop reference.
class NotifyService {
 public:
  NotifyService(const Clock& clock, const Config::Push& cfg);

  const Clock& clock() const { return clock_; }
  const Config::Push& config() const { return cfg_; }
  DeadTokenGuard& guard() { return guard_; }
  // Warnings such as "no credentials for ios_app_id X": at most once per [push] warn_interval.
  WarnLimiter& warnings() { return warnings_; }

 private:
  const Clock& clock_;
  Config::Push cfg_;
  DeadTokenGuard guard_;
  WarnLimiter warnings_;
};

// What became of one request's sends when it was answered.
struct FanoutTally {
  int sent = 0;            // accepted by a pusher
  int delivered = 0;
  int dead_deleted = 0;    // dead-token answers whose token was deleted
  int dead_kept = 0;       // dead-token answers the guard or the 410 rule kept
  int failed = 0;          // retry later (deadline passed), credential problem, request bug
  int refused = 0;         // send() returned false (queue full)
  int pending = 0;         // still without an outcome at the answer
};

struct FanoutOptions {
  int64_t answer_after_ms = 10'000;   // [push] notify_deadline
  int64_t send_deadline_mono_ms = 0;  // retries go on until this (monotonic ms)
  int64_t server_id = 0;              // for the forwarded counter
  std::optional<int64_t> realm_id;    // counted per realm too when known
  bool count_forwarded = true;        // push/test_notification counts nothing
};

class Fanout : public std::enable_shared_from_this<Fanout> {
 public:
  using OnAnswer = std::function<void(const FanoutTally&)>;

  // loop, store and service must outlive every send (the app closes the pushers, which report
  // every pending send, before the store goes). on_answer runs exactly once, on the loop thread,
  // possibly from inside finish() when nothing is pending.
  static std::shared_ptr<Fanout> create(uv_loop_t* loop, store::Store& store, NotifyService& service,
                                        FanoutOptions opts, OnAnswer on_answer);
  // Only create() can name the key (so it can use make_shared: one allocation).
  struct Key {
    explicit Key() = default;
  };
  Fanout(Key, uv_loop_t* loop, store::Store& store, NotifyService& service, FanoutOptions opts,
         OnAnswer on_answer);
  ~Fanout();
  Fanout(const Fanout&) = delete;
  Fanout& operator=(const Fanout&) = delete;

  // Hands one push to its pusher. kind: store::kKindApns / kKindFcm (for dead-token deletion).
  void send(Pusher& pusher, PushMessage&& msg);
  // After the last send(): answers at once when nothing is pending, else arms the answer timer.
  void finish();

  const FanoutTally& tally() const { return tally_; }
  // True once on_answer ran (from finish() itself when nothing was pending).
  bool answered() const { return answered_; }

 private:
  struct Entry {
    Pusher* pusher;
    int kind;
    std::string token;  // for dead-token deletion and redacted logs; never the payload
  };
  void on_outcome(size_t i, const Outcome& o) noexcept;
  void answer() noexcept;
  void close_timer() noexcept;
  void maybe_release() noexcept;

  uv_loop_t* loop_;
  store::Store& store_;
  NotifyService& service_;
  FanoutOptions opts_;
  OnAnswer on_answer_;
  std::vector<Entry> entries_;
  FanoutTally tally_;
  int outstanding_ = 0;
  bool finished_ = false;
  bool answered_ = false;
  uv_timer_t* timer_ = nullptr;        // heap; freed in its close callback
  // Self-reference while a send awaits its outcome or the timer is armed. The send callbacks
  // then hold only a raw pointer (small enough for std::function's inline storage: no
  // allocation or reference counting per send); every accepted send is reported exactly once
  // (pusher.h), so the reference always ends.
  std::shared_ptr<Fanout> keep_;
};

}  // namespace aloha::push
