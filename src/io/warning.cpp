// One line per warning on stderr, written whole so lines from threads do not interleave.
#include "io/warning.h"

#include <iostream>

namespace kiln::io {

void warn(const std::string& op, const std::string& message) {
  const std::string line = "kiln: warning: [" + op + "] " + message + "\n";
  std::cerr << line << std::flush;
}

}  // namespace kiln::io
