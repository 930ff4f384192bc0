#include "store/syncer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <utility>

#include "core/log.h"

namespace aloha::store {

int fdatasync_retry(int fd) noexcept {
  // fdatasync flushes the file's data and the metadata needed to read it back (its size), which is
  // what a growing WAL needs; on Linux it acts on the inode, whatever fd it is called through.
  for (;;) {
    if (::fdatasync(fd) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}

namespace {

bool sync_and_log(int fd) noexcept {
  int err = fdatasync_retry(fd);
  if (err != 0) LOG_ERROR("store: fdatasync(fd %d) failed: %s", fd, std::strerror(err));
  return err == 0;
}

template <class F>
void call_guarded(const char* what, F&& f) noexcept {
  try {
    f();
  } catch (const std::exception& e) {
    LOG_ERROR("store: %s threw: %s", what, e.what());
  } catch (...) {
    LOG_ERROR("store: %s threw", what);
  }
}

}  // namespace

void InlineSyncer::sync(int fd, Done done) {
  bool ok = sync_and_log(fd);
  call_guarded("sync completion", [&] { done(ok); });
}

void InlineSyncer::run(std::function<void()> work, std::function<void()> after) {
  call_guarded("background job", [&] { work(); });
  call_guarded("background job completion", [&] { after(); });
}

struct UvSyncer::Job {
  uv_work_t req{};
  std::shared_ptr<size_t> in_flight;
  int fd = -1;       // sync job when >= 0
  int err = 0;       // errno of fdatasync, read on the loop thread after the pool thread is done
  Done done;
  std::function<void()> work, after;
};

UvSyncer::UvSyncer(uv_loop_t* loop) : loop_(loop), in_flight_(std::make_shared<size_t>(0)) {}

UvSyncer::~UvSyncer() {
  if (*in_flight_ != 0)
    LOG_ERROR("store: syncer destroyed with %zu jobs in flight (detach before closing the loop)",
              *in_flight_);
}

void UvSyncer::sync(int fd, Done done) {
  auto job = std::make_unique<Job>();
  job->fd = fd;
  job->done = std::move(done);
  queue(std::move(job));
}

void UvSyncer::run(std::function<void()> work, std::function<void()> after) {
  auto job = std::make_unique<Job>();
  job->work = std::move(work);
  job->after = std::move(after);
  queue(std::move(job));
}

void UvSyncer::queue(std::unique_ptr<Job> job) {
  job->in_flight = in_flight_;
  job->req.data = job.get();
  int rc = uv_queue_work(loop_, &job->req, &UvSyncer::work_cb, &UvSyncer::after_cb);
  if (rc != 0) {
    // Only on a closing loop or bad arguments: do the job here rather than lose a completion.
    LOG_ERROR("store: uv_queue_work failed (%s); running the job on the loop thread", uv_strerror(rc));
    work_cb(&job->req);
    ++*in_flight_;
    after_cb(&job.release()->req, 0);
    return;
  }
  ++*in_flight_;
  job.release();  // owned by the request until after_cb
}

void UvSyncer::work_cb(uv_work_t* req) noexcept {
  // Pool thread: touch only the job itself.
  auto* job = static_cast<Job*>(req->data);
  if (job->fd >= 0) {
    job->err = fdatasync_retry(job->fd);
  } else if (job->work) {
    call_guarded("background job", [&] { job->work(); });
  }
}

void UvSyncer::after_cb(uv_work_t* req, int status) noexcept {
  std::unique_ptr<Job> job(static_cast<Job*>(req->data));
  --*job->in_flight;
  if (job->fd >= 0) {
    // UV_ECANCELED would mean the sync never ran: report it as failed, never as durable.
    bool ok = status == 0 && job->err == 0;
    if (status != 0) LOG_ERROR("store: fdatasync job cancelled (%s)", uv_strerror(status));
    else if (job->err != 0) LOG_ERROR("store: fdatasync(fd %d) failed: %s", job->fd, std::strerror(job->err));
    call_guarded("sync completion", [&] { job->done(ok); });
  } else if (job->after) {
    call_guarded("background job completion", [&] { job->after(); });
  }
}

void UvSyncer::drain() {
  while (*in_flight_ != 0) uv_run(loop_, UV_RUN_ONCE);
}

}  // namespace aloha::store
