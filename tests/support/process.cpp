#include "support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace aloha::test {

std::string ExitStatus::describe() const {
  if (timed_out) return "still running";
  if (exited) return "exit " + std::to_string(code);
  if (signaled) return "signal " + std::to_string(signal);
  return "unknown";
}

namespace {

ExitStatus decode(int wstatus) {
  ExitStatus st;
  if (WIFEXITED(wstatus)) {
    st.exited = true;
    st.code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    st.signaled = true;
    st.signal = WTERMSIG(wstatus);
  }
  return st;
}

}  // namespace

Process::Process(ProcessOptions opts) : max_capture_(opts.max_capture) {
  if (opts.argv.empty()) throw std::runtime_error("Process: empty argv");

  // Everything the child needs is built before fork(): between fork and exec in a threaded
  // program only async-signal-safe calls are allowed.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    std::string_view key = kv.substr(0, kv.find('='));
    bool replaced = false;
    for (const auto& [k, v] : opts.env)
      if (k == key) replaced = true;
    if (!replaced) env_strings.emplace_back(kv);
  }
  for (const auto& [k, v] : opts.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, argv;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  for (auto& s : opts.argv) argv.push_back(s.data());
  argv.push_back(nullptr);

  int out_pipe[2], err_pipe[2], exec_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    throw std::runtime_error("pipe2 failed");
  }
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    throw std::runtime_error("pipe2 failed");
  }
  pid_t parent = ::getpid();
  const char* cwd = opts.cwd.empty() ? nullptr : opts.cwd.c_str();

  pid_t pid = ::fork();
  if (pid < 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], exec_pipe[0], exec_pipe[1]})
      ::close(fd);
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Child. Die with the test runner so a crashed test leaves no daemon behind.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    // Default signal dispositions and an empty mask: the runner's must not leak into the child.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (cwd != nullptr && ::chdir(cwd) != 0) {
      int e = errno;
      (void)!::write(exec_pipe[1], &e, sizeof e);
      ::_exit(127);
    }
    ::execve(argv[0], argv.data(), envp.data());
    int e = errno;
    (void)!::write(exec_pipe[1], &e, sizeof e);
    ::_exit(127);
  }

  pid_ = pid;
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(exec_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int st = 0;
    ::waitpid(pid_, &st, 0);
    reaped_ = true;
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    throw std::runtime_error("exec " + opts.argv[0] + ": " + std::strerror(child_errno));
  }
  open_streams_ = 2;
  out_thread_ = std::thread([this, fd = out_pipe[0]] { drain(fd, &out_); });
  err_thread_ = std::thread([this, fd = err_pipe[0]] { drain(fd, &err_); });
}

Process::~Process() {
  if (!reaped_) kill9();
  reap_threads();
}

void Process::reap_threads() {
  // The drain threads end at EOF, which comes when the child (and any grandchild holding the
  // pipes) has exited.
  if (out_thread_.joinable()) out_thread_.join();
  if (err_thread_.joinable()) err_thread_.join();
}

void Process::drain(int fd, std::string* sink) {
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::lock_guard<std::mutex> lock(mu_);
    size_t room = sink->size() < max_capture_ ? max_capture_ - sink->size() : 0;
    sink->append(buf, std::min(room, static_cast<size_t>(n)));
    cv_.notify_all();
  }
  ::close(fd);
  std::lock_guard<std::mutex> lock(mu_);
  --open_streams_;
  if (sink == &err_) err_open_ = false;
  cv_.notify_all();
}

bool Process::running() {
  if (reaped_) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    status_ = decode(st);
    return false;
  }
  return true;
}

ExitStatus Process::wait(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (!running()) {
      reap_threads();
      return status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ExitStatus st;
      st.timed_out = true;
      return st;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Process::signal(int sig) {
  if (!reaped_ && running()) ::kill(pid_, sig);
}

ExitStatus Process::kill9() {
  if (reaped_) return status_;
  ::kill(pid_, SIGKILL);
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, 0);
  } while (r < 0 && errno == EINTR);
  reaped_ = true;
  status_ = decode(st);
  reap_threads();
  return status_;
}

std::string Process::stdout_text() const {
  std::lock_guard<std::mutex> lock(mu_);
  return out_;
}

std::string Process::stderr_text() const {
  std::lock_guard<std::mutex> lock(mu_);
  return err_;
}

bool Process::wait_stderr(const std::function<bool(std::string_view)>& pred, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (pred(err_)) return true;
    if (!err_open_) return false;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) return pred(err_);
  }
}

}  // namespace aloha::test
