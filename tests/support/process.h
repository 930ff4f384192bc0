// Child processes for integration tests: fork/exec with an argv vector and extra environment,
// stdout and stderr drained into memory by one thread each (so the child never blocks on a full
// pipe), bounded waits, signals. The Process object owns the child: its destructor kills (SIGKILL)
// and reaps a child still running, and joins the drain threads, so no zombie or thread outlives it.
#pragma once
#include <sys/types.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace aloha::test {

struct ExitStatus {
  bool exited = false;     // normal exit: code is valid
  int code = -1;
  bool signaled = false;   // killed by a signal: signal is valid
  int signal = 0;
  bool timed_out = false;  // the wait ran out; the child is still running

  bool ok() const { return exited && code == 0; }
  std::string describe() const;  // "exit 0", "signal 9", "still running"
};

struct ProcessOptions {
  std::vector<std::string> argv;                             // argv[0] is the program path
  std::vector<std::pair<std::string, std::string>> env;      // added to (or replacing in) environ
  std::string cwd;                                           // empty: inherit
  size_t max_capture = 16 * 1024 * 1024;  // per stream; later output is read and dropped
};

class Process {
 public:
  // Starts the child; throws std::runtime_error when fork/exec fails (exec failure is reported
  // through a CLOEXEC pipe, so a wrong path fails here, not later). The child gets SIGKILL when the
  // spawning *thread* ends (PR_SET_PDEATHSIG), so spawn from a thread that outlives the child.
  // stdin is /dev/null. A child that leaves a grandchild holding its stdout/stderr makes wait()
  // and the destructor wait for that grandchild too (the drain threads end at EOF).
  explicit Process(ProcessOptions opts);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // true while the child has not been reaped.
  bool running();

  // Waits up to timeout_ms for the child to end and reaps it; timed_out when it did not.
  ExitStatus wait(int timeout_ms);
  // The status once reaped (after wait() returned a non-timed-out status).
  const ExitStatus& status() const { return status_; }

  // Sends a signal (no-op once reaped).
  void signal(int sig);
  // SIGKILL and reap (bounded: a killed process cannot linger).
  ExitStatus kill9();

  // Snapshots of the captured output so far.
  std::string stdout_text() const;
  std::string stderr_text() const;

  // Waits until pred(stderr so far) is true (re-checked whenever output arrives), the child's
  // stderr closes, or timeout_ms passes. Returns the last pred result.
  bool wait_stderr(const std::function<bool(std::string_view)>& pred, int timeout_ms);

 private:
  void drain(int fd, std::string* sink);
  void reap_threads();

  pid_t pid_ = -1;
  bool reaped_ = false;
  ExitStatus status_;
  size_t max_capture_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string out_, err_;
  int open_streams_ = 0;
  bool err_open_ = true;
  std::thread out_thread_, err_thread_;
};

}  // namespace aloha::test
