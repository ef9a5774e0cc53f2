// The end of a benchmark binary's run: its JSON result, with the GPU's name when it ran on one,
// printed as one line (what bench/compare.py and bench/zoo.py read) and written to --json's file.
#pragma once

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "kiln/kiln.h"

namespace bench {

/// Prints `out` (plus "gpu" on a CUDA device) as one JSON line and, when `json_path` is set, writes
/// it there indented. Returns the exit status: 1 when the file cannot be written, else 0.
inline int report(nlohmann::json out, const kiln::Device& device, const std::string& json_path, const char* tool) {
  if (device.is_cuda()) {
    for (const auto& d : kiln::list_local_devices())
      if (d.device_type == "GPU") out["gpu"] = d.gpu_name;
  }
  std::cout << out.dump() << std::endl;
  if (json_path.empty()) return 0;
  std::ofstream f(json_path);
  f << out.dump(2) << "\n";
  if (!f) {
    std::cerr << tool << ": could not write " << json_path << "\n";
    return 1;
  }
  return 0;
}

}  // namespace bench
