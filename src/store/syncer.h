// Syncer: where the store's slow disk work runs. sync() makes a file's data durable (fdatasync)
// and run() executes a job (WAL checkpoints); UvSyncer does both on the libuv thread pool so the
// loop thread never waits for the disk, InlineSyncer does them on the calling thread (tests, and
// shutdown once the loop is gone). Completions always run on the loop (calling) thread.
#pragma once
#include <uv.h>

#include <cstddef>
#include <functional>
#include <memory>

namespace aloha::store {

class Syncer {
 public:
  using Done = std::function<void(bool ok)>;
  virtual ~Syncer() = default;

  // fdatasync(fd); then done(ok) on the loop thread (ok=false: the data may not be durable; the
  // error is logged). The caller keeps fd open until done ran. InlineSyncer calls done before
  // returning. Never throws except std::bad_alloc.
  virtual void sync(int fd, Done done) = 0;

  // work() off the loop thread where possible, then after() on the loop thread. work must not
  // touch state the loop thread uses meanwhile and must not throw (exceptions are logged).
  virtual void run(std::function<void()> work, std::function<void()> after) = 0;
};

// Everything on the calling thread, completions before returning.
class InlineSyncer final : public Syncer {
 public:
  void sync(int fd, Done done) override;
  void run(std::function<void()> work, std::function<void()> after) override;
};

// The libuv thread pool (uv_queue_work): work and fdatasync on a pool thread, completions in the
// after_work callback on the loop thread. Holds no handles; each job is one uv_work_t request,
// so uv_run() keeps running until every job has completed. Destroy only when in_flight() == 0
// (drain() gets there); a job completing after destruction does not touch the destroyed object.
class UvSyncer final : public Syncer {
 public:
  explicit UvSyncer(uv_loop_t* loop);
  ~UvSyncer() override;
  UvSyncer(const UvSyncer&) = delete;
  UvSyncer& operator=(const UvSyncer&) = delete;

  void sync(int fd, Done done) override;
  void run(std::function<void()> work, std::function<void()> after) override;

  size_t in_flight() const { return *in_flight_; }
  // Runs the loop (UV_RUN_ONCE) until every job has completed. Only outside uv_run().
  void drain();
  uv_loop_t* loop() const { return loop_; }

 private:
  struct Job;
  static void work_cb(uv_work_t* req) noexcept;
  static void after_cb(uv_work_t* req, int status) noexcept;
  void queue(std::unique_ptr<Job> job);

  uv_loop_t* loop_;
  std::shared_ptr<size_t> in_flight_;  // shared with the jobs: they may outlive *this
};

// fdatasync(fd), retried on EINTR. Returns 0 or an errno value.
int fdatasync_retry(int fd) noexcept;

}  // namespace aloha::store
