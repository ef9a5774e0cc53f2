// Writing and reading a functional model's graph (inputs, layer calls, outputs) in its config.
#include "io/functional_config.h"

#include <map>

#include "io/json_fields.h"
#include "io/layer_config.h"
#include "io/model_config.h"
#include "kiln/error.h"
#include "model/graph.h"

namespace kiln::io {

using nlohmann::json;

namespace {

// [maker, call] of value `v`.
json value_ref(const model::Graph& g, int v, const std::vector<int>& call_of_value) {
  return json::array({g.maker_name(v), call_of_value[static_cast<std::size_t>(v)]});
}

}  // namespace

json functional_graph_json(const Model& model) {
  const model::Graph& g = model.graph();
  std::vector<int> call_of_value(static_cast<std::size_t>(g.input_count()), 0);
  std::map<const Layer*, int> calls;
  for (const auto& node : g.nodes()) call_of_value.push_back(calls[node.layer.get()]++);
  json inputs = json::array(), nodes = json::array(), outputs = json::array();
  for (int i = 0; i < g.input_count(); ++i)
    inputs.push_back({{"name", g.input_names()[static_cast<std::size_t>(i)]}, {"shape", g.shape(i).dims()}});
  for (const auto& node : g.nodes()) {
    json reads = json::array();
    for (int v : node.inputs) reads.push_back(value_ref(g, v, call_of_value));
    nodes.push_back({{"layer", node.layer->name()}, {"inputs", reads}});
  }
  for (int v : g.outputs()) outputs.push_back(value_ref(g, v, call_of_value));
  return {{"inputs", inputs}, {"nodes", nodes}, {"outputs", outputs}};
}

FunctionalGraph parse_functional_graph(const json& config, const std::vector<std::shared_ptr<Layer>>& layers,
                                       const std::string& source) {
  const JsonFields top(config, source + ": the model config");
  std::map<std::string, std::shared_ptr<Layer>> by_name;
  for (const auto& l : layers) by_name[l->name()] = l;
  std::map<std::pair<std::string, int64_t>, SymbolicTensor> values;
  FunctionalGraph out;

  const json& inputs = top.at("inputs");
  if (!inputs.is_array() || inputs.empty()) top.fail("\"inputs\" is not a non-empty list; expected the model's inputs");
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const JsonFields f(inputs[i], source + ": input " + std::to_string(i));
    const std::string name = f.string("name");
    const std::vector<int64_t> dims = f.extents("shape");
    if (dims.empty()) f.fail("\"shape\" is empty; expected the per-sample shape, e.g. [32, 32, 3]");
    int64_t numel = 1;
    for (int64_t d : dims)
      if (__builtin_mul_overflow(numel, d, &numel) || numel > kMaxInputNumel)
        f.fail("\"shape\" has more than " + std::to_string(kMaxInputNumel) + " scalars; expected a smaller input");
    if (by_name.count(name) || values.count({name, 0}))
      f.fail("the name \"" + name.substr(0, 60) + "\" is used twice; expected unique names");
    SymbolicTensor t = Input(Shape(dims), name);
    values.emplace(std::make_pair(name, int64_t{0}), t);
    out.inputs.push_back(t);
  }

  const auto read_ref = [&](const json& ref, const JsonFields& where) -> SymbolicTensor {
    if (!ref.is_array() || ref.size() != 2 || !ref[0].is_string() || !ref[1].is_number_integer())
      where.fail("a value reference is not [name, call]; expected e.g. [\"dense\", 0]");
    const auto it = values.find({ref[0].get<std::string>(), ref[1].get<int64_t>()});
    if (it == values.end())
      where.fail("reads " + ref.dump().substr(0, 80) +
                 ", which no input or earlier layer call makes; expected the values in the order they are made");
    return it->second;
  };

  const json& nodes = top.at("nodes");
  if (!nodes.is_array()) top.fail("\"nodes\" is not a list; expected the layer calls");
  std::map<std::string, int64_t> calls;
  std::map<std::string, bool> counted;
  for (std::size_t n = 0; n < nodes.size(); ++n) {
    const JsonFields f(nodes[n], source + ": node " + std::to_string(n));
    const std::string name = f.string("layer");
    const auto layer = by_name.find(name);
    if (layer == by_name.end()) f.fail("calls layer \"" + name.substr(0, 60) + "\", which is not in \"layers\"");
    const json& reads = f.at("inputs");
    if (!reads.is_array() || reads.empty()) f.fail("\"inputs\" is not a non-empty list; expected [[name, call], ...]");
    std::vector<SymbolicTensor> args;
    for (const json& r : reads) args.push_back(read_ref(r, f));
    SymbolicTensor made = args[0];
    try {
      made = (*layer->second)(args);
      if (!counted[name] && args.size() == 1) {
        const int64_t w = weight_count(*layer->second, args[0].shape());
        if (__builtin_add_overflow(out.weight_count, w, &out.weight_count) || out.weight_count > kMaxInputNumel)
          f.fail("the model would have more than " + std::to_string(kMaxInputNumel) + " weights");
      }
    } catch (const Error& e) {
      if (e.op() == "load_model") throw;
      f.fail(e.what());
    }
    counted[name] = true;
    if (made.shape().numel() > kMaxInputNumel)
      f.fail("outputs more than " + std::to_string(kMaxInputNumel) + " scalars per sample; expected a smaller model");
    values.emplace(std::make_pair(name, calls[name]++), made);
  }
  for (const auto& l : layers)
    if (!calls.count(l->name()))
      top.fail("layer '" + l->name() + "' is in \"layers\" but no node calls it; expected every layer called");
  const json& outputs = top.at("outputs");
  if (!outputs.is_array() || outputs.empty()) top.fail("\"outputs\" is not a non-empty list; expected [[name, call]]");
  for (const json& r : outputs) out.outputs.push_back(read_ref(r, top));
  return out;
}

}  // namespace kiln::io
