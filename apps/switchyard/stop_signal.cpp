#include "apps/switchyard/stop_signal.h"

#include <unistd.h>

#include <csignal>

namespace sy::app {

namespace {

// A signal handler can only talk to the program through a lock-free flag: this is the one
// piece of process-wide mutable state, and it lives in the app, not the library.
volatile std::sig_atomic_t g_stop =
    0;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)

extern "C" void on_stop_signal(int sig) {
  if (g_stop != 0) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_stop = 1;
  constexpr char kMessage[] =
      "\nstopping after this step and saving a checkpoint (press Ctrl-C again to kill)\n";
  (void)!::write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
}

}  // namespace

void install_stop_signal() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

bool stop_requested() { return g_stop != 0; }

}  // namespace sy::app
