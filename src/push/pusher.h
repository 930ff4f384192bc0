// Pusher: one upstream app (an [apns] / [apns.NAME] section, or [fcm]) that delivers pushes and
// reports one Outcome per push (upstreams.md table). Retries of retry_later outcomes happen inside
// the pusher, with jittered backoff, until the push's deadline. Each pusher has its own bounded
// queue and in-flight cap, so one broken app never starves another.
// PusherRegistry maps a device to the pusher that serves it.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "push/outcome.h"

namespace aloha::push {

enum class Platform { apns = 1, fcm = 2 };

// One push to one device. `payload` is notification content: it is never logged, stored or put in
// an error message, on any path.
struct PushMessage {
  Platform platform = Platform::apns;
  std::string token;    // the device token as registered
  std::string app_id;   // APNs: the device's ios_app_id = apns-topic. FCM: empty.
  std::string payload;  // APNs: the complete JSON body. FCM: the JSON object for message.data
                        // (string values only).
  // When set, used instead of `payload`: one immutable buffer shared by all of a notify's devices
  // of that platform (and by every attempt), so no copy is made per device or per attempt.
  std::shared_ptr<const std::string> shared_payload = {};
  // APNs headers (api.md push/notify step 4).
  std::string push_type = "alert";  // apns-push-type; empty = header omitted
  int priority = 10;                // apns-priority; 0 = omitted
  int64_t expiration_s = -1;        // apns-expiration (epoch seconds); -1 = omitted
  std::string collapse_id;          // apns-collapse-id; empty = omitted
  // FCM (android.priority, android.ttl).
  bool fcm_high_priority = true;
  int64_t fcm_ttl_s = -1;  // -1 = omitted

  std::string_view payload_data() const {
    return shared_payload ? std::string_view(*shared_payload) : std::string_view(payload);
  }
};

// Called exactly once per accepted push, never from inside send(), on the loop thread.
using SendDone = std::function<void(const Outcome&)>;

class Pusher {
 public:
  virtual ~Pusher() = default;

  // Accepts one push. Retry-later outcomes are retried inside the pusher until deadline_mono_ms
  // (monotonic ms); the outcome reported then is the last one. Returns false, without calling done,
  // when this app's queue is full (the caller answers 503 with Retry-After).
  virtual bool send(PushMessage msg, int64_t deadline_mono_ms, SendDone done) = 0;

  // Whether n more pushes would be accepted now (so a request can be refused before anything is
  // sent).
  virtual bool has_capacity(size_t n) const = 0;

  // "apns", "apns.NAME" or "fcm": for logs, counters and isolation.
  virtual const std::string& name() const = 0;

  // Pushes accepted and not yet reported.
  virtual size_t pending() const = 0;

  // Appends "name: delivered=… dead_token=… gave_up=… …" (counts since start; gave_up = pushes
  // still retry_later when their deadline or shutdown came, i.e. dropped from the retry queue).
  // The app logs it periodically. Never content.
  virtual void append_stats(std::string& out) const { (void)out; }

  // Shutdown: no new pushes; pending ones are reported retry_later (content dropped, never
  // persisted) and connections close. `done` runs once every handle is closed.
  virtual void close(std::function<void()> done) = 0;
};

// The common form of Pusher::append_stats.
void append_outcome_stats(std::string& out, const std::string& name, uint64_t delivered, uint64_t dead,
                          uint64_t gave_up, uint64_t credential, uint64_t bug, uint64_t retries);

// Which pusher serves a device (upstreams.md): the [apns.NAME] section whose `topics` list the
// device's ios_app_id, else the section without `topics`; FCM has one pusher. nullptr means "no
// credentials for it": the device counts in the totals but nothing is sent.
class PusherRegistry {
 public:
  // topics empty = the section that serves every ios_app_id no other section lists.
  void add_apns(std::unique_ptr<Pusher> p, const std::vector<std::string>& topics);
  void set_fcm(std::unique_ptr<Pusher> p);

  Pusher* apns_for(std::string_view ios_app_id) const;
  Pusher* fcm() const { return fcm_.get(); }
  bool empty() const { return apns_.empty() && !fcm_; }

  // Every pusher, for shutdown and stats.
  std::vector<Pusher*> all() const;

  // Every pusher's append_stats(), "; "-separated.
  std::string stats_line() const;

  // Closes every pusher; done runs once all have closed.
  void close_all(std::function<void()> done);

 private:
  std::vector<std::unique_ptr<Pusher>> apns_;
  std::unordered_map<std::string, Pusher*> by_topic_;
  Pusher* apns_default_ = nullptr;
  std::unique_ptr<Pusher> fcm_;
};

}  // namespace aloha::push
