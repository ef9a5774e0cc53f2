// Warnings: things that went wrong without failing the operation (a save that is in place but
// whose directory could not be synced). They go to stderr, one line each, so training goes on.
#pragma once

#include <string>

namespace kiln::io {

/// Writes "kiln: warning: [op] message" and a newline to stderr.
void warn(const std::string& op, const std::string& message);

}  // namespace kiln::io
