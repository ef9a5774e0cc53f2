// GraphBuilder: value names per layout (a Transpose the first time the other layout is asked for),
// unique node and value names, attributes and initializers.
#include "onnx/graph_builder.h"

#if KILN_WITH_ONNX

#include <numeric>

#include "kiln/error.h"

namespace kiln::onnx_export {

std::vector<int64_t> layout_perm(int64_t rank, bool to_first) {
  std::vector<int64_t> perm(static_cast<std::size_t>(rank));
  std::iota(perm.begin(), perm.end(), 0);
  if (rank < 3) return perm;
  // [N, d1 .. dk, C] -> [N, C, d1 .. dk], or back.
  for (int64_t i = 1; i < rank; ++i) {
    const auto k = static_cast<std::size_t>(i);
    perm[k] = to_first ? (i == 1 ? rank - 1 : i - 1) : (i == rank - 1 ? 1 : i + 1);
  }
  return perm;
}

GraphBuilder::GraphBuilder(onnx::GraphProto& graph, const model::Graph& kiln_graph, const OnnxOptions& options)
    : graph_(graph), kiln_graph_(kiln_graph), options_(options) {
  const std::size_t values = kiln_graph.nodes().size() + static_cast<std::size_t>(kiln_graph.input_count());
  values_.resize(values);
  readers_.assign(values, 0);
  for (const auto& node : kiln_graph.nodes())
    for (int v : node.inputs) ++readers_[static_cast<std::size_t>(v)];
  for (int v : kiln_graph.outputs()) ++readers_[static_cast<std::size_t>(v)];
}

Layout GraphBuilder::made_in(int v) const { return values_.at(static_cast<std::size_t>(v)).made; }

bool GraphBuilder::has(int v, Layout layout) const {
  const Names& names = values_.at(static_cast<std::size_t>(v));
  return (layout == Layout::ChannelsLast || rank(v) < 3 ? names.last : names.first).has_value();
}

void GraphBuilder::define(int v, const std::string& name, Layout layout) {
  Names& names = values_.at(static_cast<std::size_t>(v));
  if (rank(v) < 3) layout = Layout::ChannelsLast;
  names = Names{};
  names.made = layout;
  (layout == Layout::ChannelsLast ? names.last : names.first) = name;
}

void GraphBuilder::alias(int v, int from) {
  values_.at(static_cast<std::size_t>(v)) = values_.at(static_cast<std::size_t>(from));
}

std::string GraphBuilder::value(int v, Layout layout) {
  Names& names = values_.at(static_cast<std::size_t>(v));
  if (rank(v) < 3) layout = Layout::ChannelsLast;
  auto& wanted = layout == Layout::ChannelsLast ? names.last : names.first;
  if (wanted) return *wanted;
  const auto& other = layout == Layout::ChannelsLast ? names.first : names.last;
  if (!other) throw Error("export_onnx", "value " + kiln_graph_.value_name(v) + " is read before it is made");
  const bool to_first = layout == Layout::ChannelsFirst;
  auto& transpose = node("Transpose", {*other}, to_first ? "to_channels_first" : "to_channels_last");
  set_attr(transpose, "perm", layout_perm(rank(v), to_first));
  wanted = transpose.output(0);
  // Another value may alias this one (Dropout): it shares the Transpose from now on.
  for (Names& n : values_)
    if ((to_first ? n.last : n.first) == other && !(to_first ? n.first : n.last))
      (to_first ? n.first : n.last) = wanted;
  return *wanted;
}

int64_t GraphBuilder::axis(int v, int64_t axis, Layout layout) const {
  const int64_t r = rank(v);
  const int64_t a = axis < 0 ? axis + r : axis;
  if (a < 0 || a >= r)
    throw Error("export_onnx", "axis " + std::to_string(axis) + " of value " + kiln_graph_.value_name(v) + " of rank " +
                                   std::to_string(r) + "; expected -" + std::to_string(r) + " to " +
                                   std::to_string(r - 1));
  if (layout == Layout::ChannelsLast || r < 3 || a == 0) return a;
  return a == r - 1 ? 1 : a + 1;
}

std::string GraphBuilder::fresh(const std::string& hint, bool global) {
  const std::string base = global || prefix_.empty() ? hint : prefix_ + "/" + hint;
  int& next = used_[base];
  std::string name = base;
  if (next > 0) {
    // "conv2d/to_channels_last_1", skipping a suffix some other name already took.
    do name = base + "_" + std::to_string(next++);
    while (used_.count(name));
    used_[name] = 1;
  } else {
    next = 1;
  }
  return name;
}

std::string GraphBuilder::result_name(const LayerCall& call, Layout layout) {
  if (rank(call.output) < 3 || layout == Layout::ChannelsLast) return call.name;
  return fresh(call.name + "/channels_first", true);
}

onnx::NodeProto& GraphBuilder::node(const std::string& op, const std::vector<std::string>& inputs,
                                    const std::string& hint) {
  return node_to(op, inputs, fresh(hint));
}

onnx::NodeProto& GraphBuilder::node_to(const std::string& op, const std::vector<std::string>& inputs,
                                       const std::string& output) {
  used_.try_emplace(output, 1);
  onnx::NodeProto& n = *graph_.add_node();
  n.set_op_type(op);
  n.set_name(output);
  for (const auto& in : inputs) n.add_input(in);
  n.add_output(output);
  return n;
}

std::string GraphBuilder::constant(const std::string& hint, const std::vector<float>& values,
                                   const std::vector<int64_t>& dims) {
  onnx::TensorProto& t = *graph_.add_initializer();
  t.set_name(fresh(hint));
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t.add_dims(d);
  // raw_data: 4 bytes per value instead of a varint-tagged field each; little-endian, as ONNX says.
  t.set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
  return t.name();
}

std::string GraphBuilder::constant_i64(const std::string& hint, const std::vector<int64_t>& values) {
  onnx::TensorProto& t = *graph_.add_initializer();
  t.set_name(fresh(hint));
  t.set_data_type(onnx::TensorProto::INT64);
  t.add_dims(static_cast<int64_t>(values.size()));
  for (int64_t v : values) t.add_int64_data(v);
  return t.name();
}

std::string GraphBuilder::cached(const std::string& key, const std::function<std::string()>& make) {
  auto it = cached_.find(key);
  if (it != cached_.end()) return it->second;
  std::string name = make();
  cached_.emplace(key, name);
  return name;
}

int GraphBuilder::call_count(const Layer& layer) const {
  int n = 0;
  for (const auto& node : kiln_graph_.nodes()) n += node.layer.get() == &layer ? 1 : 0;
  return n;
}

onnx::TensorProto* GraphBuilder::initializer(const std::string& name) {
  for (auto& t : *graph_.mutable_initializer())
    if (t.name() == name) return &t;
  return nullptr;
}

std::optional<AffineNode> GraphBuilder::affine(const std::string& name) const {
  auto it = affine_.find(name);
  if (it == affine_.end()) return std::nullopt;
  return it->second;
}

void set_attr(onnx::NodeProto& node, const std::string& name, int64_t value) {
  auto& a = *node.add_attribute();
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INT);
  a.set_i(value);
}

void set_attr(onnx::NodeProto& node, const std::string& name, float value) {
  auto& a = *node.add_attribute();
  a.set_name(name);
  a.set_type(onnx::AttributeProto::FLOAT);
  a.set_f(value);
}

void set_attr(onnx::NodeProto& node, const std::string& name, const std::vector<int64_t>& values) {
  auto& a = *node.add_attribute();
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a.add_ints(v);
}

void set_attr(onnx::NodeProto& node, const std::string& name, const std::string& value) {
  auto& a = *node.add_attribute();
  a.set_name(name);
  a.set_type(onnx::AttributeProto::STRING);
  a.set_s(value);
}

}  // namespace kiln::onnx_export

#endif  // KILN_WITH_ONNX
