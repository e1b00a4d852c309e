// Ctrl-C for long commands (train, study): the first SIGINT (or SIGTERM) asks the work to stop at
// its next safe point (the trainer saves a checkpoint and returns); a second one kills the
// process the default way.
#pragma once

namespace sy::app {

// Installs the handlers (idempotent).
void install_stop_signal();
// Whether a stop was requested since install_stop_signal().
bool stop_requested();

}  // namespace sy::app
