// Dtype policies and the process-wide global policy (kiln/mixed_precision.h).
#include "kiln/mixed_precision.h"

#include <mutex>

#include "kiln/error.h"

namespace kiln::mixed_precision {

namespace {

std::mutex& global_mutex() {
  static std::mutex m;
  return m;
}

DTypePolicy& global_slot() {
  static DTypePolicy policy("float32");
  return policy;
}

std::string joined_names() {
  std::string out;
  for (const std::string& n : policy_names()) out += (out.empty() ? "\"" : ", \"") + n + "\"";
  return out;
}

}  // namespace

const std::vector<std::string>& policy_names() {
  static const std::vector<std::string> names = {"float32", "mixed_float16", "mixed_bfloat16"};
  return names;
}

DTypePolicy::DTypePolicy(const std::string& name) : name_(name) {
  if (name == "float32") {
    compute_ = variable_ = DType::Float32;
  } else if (name == "float64") {
    // Layers create float32 weights whatever the policy; a float64 policy would claim otherwise.
    throw Error(
        "DTypePolicy",
        "policy \"float64\" is not supported: kiln's layers keep float32 weights; expected one of " + joined_names());
  } else if (name == "mixed_float16") {
    compute_ = DType::Float16;
    variable_ = DType::Float32;
  } else if (name == "mixed_bfloat16") {
    compute_ = DType::BFloat16;
    variable_ = DType::Float32;
  } else if (name == "float16" || name == "bfloat16") {
    throw Error("DTypePolicy",
                "policy \"" + name +
                    "\" would keep weights in 16 bits, which kiln's optimizers do not update; use \"mixed_" + name +
                    "\" (16-bit math, float32 weights)");
  } else {
    throw Error("DTypePolicy", "unknown dtype policy \"" + name + "\"; expected one of " + joined_names());
  }
}

void set_global_policy(const std::string& name) { set_global_policy(DTypePolicy(name)); }

void set_global_policy(const DTypePolicy& policy) {
  const std::lock_guard<std::mutex> lock(global_mutex());
  global_slot() = policy;
}

DTypePolicy global_policy() {
  const std::lock_guard<std::mutex> lock(global_mutex());
  return global_slot();
}

}  // namespace kiln::mixed_precision
