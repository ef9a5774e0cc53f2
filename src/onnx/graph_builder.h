// The ONNX graph being written: kiln values -> ONNX value names in either layout, nodes with unique
// names, initializers, and what BatchNormalization folding needs to know about Conv2D and Dense.
//
// Layouts: kiln's values are channels_last ([N, H, W, C], "NHWC"); ONNX's Conv, pooling and
// BatchNormalization want channels_first ([N, C, H, W]). Each value is written in the layout of the
// node that makes it, and a Transpose to the other layout is added the first time a reader asks for
// it (and reused after), so a chain of channels_first nodes (Conv, Relu, MaxPool, Conv) has no
// Transpose inside it: only where the graph goes back to a channels_last node (Flatten, Dense).
#pragma once

#if KILN_WITH_ONNX

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kiln/onnx.h"
#include "kiln/shape.h"
#include "model/graph.h"

namespace kiln::onnx_export {

/// Where the channel axis of a value of rank >= 3 is: last (kiln's and Keras') or second (ONNX's
/// Conv and pooling). Values of rank <= 2 are the same in both.
enum class Layout { ChannelsLast, ChannelsFirst };

/// A Conv or Gemm node whose weight and bias BatchNormalization folding may scale: `weight` holds
/// one slice per output channel along `channel_axis`.
struct AffineNode {
  int node_index;        // into GraphProto::node
  std::string weight;    // initializer name
  int64_t channel_axis;  // of the weight: 0 for Conv's [F, C, KH, KW], 1 for Gemm's [in, units]
  int bias_input;        // the node's input index of the bias (added when the node has none)
  int value;             // the kiln value the node makes
};

/// One call of a layer in the model's graph, as an exporter sees it.
struct LayerCall {
  const Layer& layer;
  std::vector<int> inputs;  // kiln values read
  int output;               // kiln value made
  std::string name;         // the layer's name, "_<n>" added for the n-th further call of a shared layer
};

class GraphBuilder {
 public:
  GraphBuilder(onnx::GraphProto& graph, const model::Graph& kiln_graph, const OnnxOptions& options);

  const OnnxOptions& options() const { return options_; }
  /// Per-sample (Keras) shape of kiln value `v`.
  const Shape& shape(int v) const { return kiln_graph_.shape(v); }
  /// Rank of value `v` with the batch dimension.
  int64_t rank(int v) const { return static_cast<int64_t>(shape(v).ndim()) + 1; }

  // ---- values ----
  /// Value `v`'s ONNX name in `layout`, adding a Transpose the first time a layout is asked for
  /// that `v` was not made in.
  std::string value(int v, Layout layout);
  /// Whether `v` already has an ONNX value in `layout`.
  bool has(int v, Layout layout) const;
  /// The layout `v` was made in (channels_last for values of rank <= 2).
  Layout made_in(int v) const;
  /// Records that `v` is the ONNX value `name`, in `layout`.
  void define(int v, const std::string& name, Layout layout);
  /// `v` is `from` itself (a layer that is the identity at inference).
  void alias(int v, int from);
  /// Keras axis `axis` of value `v` (counted with the batch dimension; negative from the end) as an
  /// axis of its ONNX value in `layout`.
  int64_t axis(int v, int64_t axis, Layout layout) const;
  /// Number of nodes reading kiln value `v`, plus one for each time it is a model output.
  int readers(int v) const { return readers_.at(static_cast<std::size_t>(v)); }

  // ---- nodes and initializers ----
  /// Sets the prefix of the next nodes' names and output names (the layer call's name).
  void begin_call(const std::string& name) { prefix_ = name; }
  /// A new node `op` reading `inputs` and making one output, named "<call>/<hint>" (made unique).
  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs, const std::string& hint);
  /// A new node making the output `output` exactly (a name not used yet).
  onnx::NodeProto& node_to(const std::string& op, const std::vector<std::string>& inputs, const std::string& output);
  /// Number of nodes written so far.
  int node_count() const { return graph_.node_size(); }
  /// A name "<call>/<hint>" (or `hint` alone when `global`) not used by any value yet.
  std::string fresh(const std::string& hint, bool global = false);
  /// The name for `call`'s output made in `layout`: the call's name (kept free for it) when
  /// channels_last, "<call>/channels_first" otherwise.
  std::string result_name(const LayerCall& call, Layout layout);
  /// A float32 initializer of `dims` holding `values` (row-major), named "<call>/<hint>".
  std::string constant(const std::string& hint, const std::vector<float>& values, const std::vector<int64_t>& dims);
  /// A 1-D int64 initializer holding `values` (shapes, pads, axes), named "<call>/<hint>".
  std::string constant_i64(const std::string& hint, const std::vector<int64_t>& values);
  /// The initializer made by `make` the first time `key` is asked for, the same one after (a shared
  /// layer's weights, written once for all its calls).
  std::string cached(const std::string& key, const std::function<std::string()>& make);
  /// Number of calls of `layer` in the model (more than one: a shared layer).
  int call_count(const Layer& layer) const;
  /// The initializer called `name`, or null.
  onnx::TensorProto* initializer(const std::string& name);
  /// The node at `index`.
  onnx::NodeProto& node_at(int index) { return *graph_.mutable_node(index); }

  // ---- BatchNormalization folding ----
  /// Records that ONNX value `name` is made by an affine node (Conv or Gemm without activation).
  void set_affine(const std::string& name, AffineNode affine) { affine_.insert_or_assign(name, std::move(affine)); }
  /// The affine node that makes ONNX value `name`, if any.
  std::optional<AffineNode> affine(const std::string& name) const;

 private:
  struct Names {
    std::optional<std::string> last, first;  // ONNX names in either layout
    Layout made = Layout::ChannelsLast;
  };
  onnx::GraphProto& graph_;
  const model::Graph& kiln_graph_;
  OnnxOptions options_;
  std::vector<Names> values_;
  std::vector<int> readers_;
  std::map<std::string, int> used_;  // names given out, with a counter for the next suffix
  std::map<std::string, AffineNode> affine_;
  std::map<std::string, std::string> cached_;
  std::string prefix_;
};

/// Sets attribute `name` of `node`.
void set_attr(onnx::NodeProto& node, const std::string& name, int64_t value);
/// Sets attribute `name` of `node`.
void set_attr(onnx::NodeProto& node, const std::string& name, float value);
/// Sets attribute `name` of `node`.
void set_attr(onnx::NodeProto& node, const std::string& name, const std::vector<int64_t>& values);
/// Sets attribute `name` of `node`.
void set_attr(onnx::NodeProto& node, const std::string& name, const std::string& value);

/// The permutation taking channels_last to channels_first (to_first) or back, for `rank`.
std::vector<int64_t> layout_perm(int64_t rank, bool to_first);

}  // namespace kiln::onnx_export

#endif  // KILN_WITH_ONNX
