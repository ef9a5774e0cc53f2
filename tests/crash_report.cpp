// On a crash (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) the test binary prints the signal, the faulting
// address and a backtrace of the crashing thread to stderr, then dies of the same signal, so that a
// crash seen once on another machine (a CI run, the GPU machine) leaves more than "SegFault" behind.
// Addresses are printed with their module and offset for addr2line. glibc only, and not under the
// sanitizers, whose own handlers report more.
#include <cstdio>  // defines __GLIBC__ where glibc is the C library

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KILN_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define KILN_SANITIZED 1
#endif
#endif
#if defined(__linux__) && defined(__GLIBC__) && !defined(KILN_SANITIZED)
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <initializer_list>

namespace {

void write_text(const char* s) {
  const ssize_t ignored = ::write(STDERR_FILENO, s, std::strlen(s));
  (void)ignored;
}

void on_crash(int sig, siginfo_t* info, void* /*context*/) {
  char line[160];
  std::snprintf(line, sizeof line, "\n*** kiln_tests: signal %d (%s) at address %p; backtrace:\n", sig, strsignal(sig),
                info ? info->si_addr : nullptr);
  write_text(line);
  void* frames[64];
  const int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  write_text("*** end of backtrace\n");
  signal(sig, SIG_DFL);
  raise(sig);
}

const bool installed = [] {
  void* warm[1];
  backtrace(warm, 1);  // loads libgcc_s now: a crashing thread must not have to
  struct sigaction action {};
  action.sa_sigaction = on_crash;
  action.sa_flags = SA_SIGINFO | SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  for (const int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) sigaction(sig, &action, nullptr);
  return true;
}();

}  // namespace
#endif
