// Grad mode: a thread-local switch consulted by record().
#include "kiln/autograd.h"

namespace kiln {

namespace {
thread_local bool grad_mode = true;
}

bool grad_enabled() { return grad_mode; }

NoGradGuard::NoGradGuard() : previous_(grad_mode) { grad_mode = false; }
NoGradGuard::~NoGradGuard() { grad_mode = previous_; }

}  // namespace kiln
