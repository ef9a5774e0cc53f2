/// Mixed precision in Keras' names: a dtype policy says which dtype a layer's variables are kept in
/// and which dtype it computes in. Under "mixed_bfloat16" or "mixed_float16" the variables stay
/// float32 (so small updates are not lost) while the layer's math runs in the 16-bit type (tensor
/// cores, half the bytes moved); losses and metrics are computed in float32.
#pragma once

#include <string>
#include <vector>

#include "kiln/dtype.h"

namespace kiln::mixed_precision {

/// A dtype policy (Keras' keras.DTypePolicy): "float32", "mixed_float16" or "mixed_bfloat16"
/// (weights float32 in each).
class DTypePolicy {
 public:
  /// The policy called `name`; throws kiln::Error naming the accepted names for any other.
  explicit DTypePolicy(const std::string& name = "float32");
  /// The policy's name, as given.
  const std::string& name() const { return name_; }
  /// The dtype the layer computes in (float16 or bfloat16 under the mixed policies).
  DType compute_dtype() const { return compute_; }
  /// The dtype the layer's weights are kept in (float32 under the mixed policies).
  DType variable_dtype() const { return variable_; }
  /// Whether computing and variable dtypes differ (a mixed policy).
  bool is_mixed() const { return compute_ != variable_; }
  /// Policies are equal when their names are.
  bool operator==(const DTypePolicy& other) const { return name_ == other.name_; }

 private:
  std::string name_;
  DType compute_ = DType::Float32;
  DType variable_ = DType::Float32;
};

/// The names DTypePolicy accepts.
const std::vector<std::string>& policy_names();

/// Sets the policy that layers constructed afterwards take (Keras'
/// keras.mixed_precision.set_global_policy); a layer keeps the policy it was constructed under.
/// Process-wide; throws kiln::Error for an unknown name.
void set_global_policy(const std::string& name);
/// The same, from a policy object.
void set_global_policy(const DTypePolicy& policy);
/// The current global policy ("float32" unless set).
DTypePolicy global_policy();

}  // namespace kiln::mixed_precision
