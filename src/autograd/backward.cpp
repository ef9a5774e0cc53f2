// Graph recording and the backward pass: a topological order of nodes, then each rule once.
#include "autograd/backward.h"

#include <unordered_map>
#include <unordered_set>

#include "autograd/node.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "tensor/tensor_impl.h"

namespace kiln::autograd {

Node::~Node() {
  // The rule's captures go first (while `inputs` still holds the same tensors, so nothing else
  // dies), then each input whose tensor and node only we hold hands its node to a work list; a
  // node whose inputs were taken dies without recursing.
  std::vector<std::shared_ptr<Node>> dying;
  const auto release = [&dying](Node& n) {
    n.backward = nullptr;
    for (Tensor& t : n.inputs) {
      const std::shared_ptr<TensorImpl>& impl = t.impl();
      if (impl && impl.use_count() == 1 && impl->grad_fn && impl->grad_fn.use_count() == 1)
        dying.push_back(std::move(impl->grad_fn));
    }
    n.inputs.clear();
  };
  release(*this);
  while (!dying.empty()) {
    std::shared_ptr<Node> n = std::move(dying.back());
    dying.pop_back();
    release(*n);
  }
}

Tensor record(const std::string& name, Tensor output, const std::vector<Tensor>& inputs, BackwardFn backward) {
  if (!grad_enabled()) return output;
  bool any = false;
  for (const Tensor& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) return output;
  auto node = std::make_shared<Node>();
  node->name = name;
  for (const Tensor& t : inputs) node->inputs.push_back(t.defined() && t.requires_grad() ? t : Tensor());
  node->backward = std::move(backward);
  output.impl()->grad_fn = std::move(node);
  output.impl()->requires_grad = true;
  return output;
}

namespace {

// Nodes reachable from `root`, each after every node that consumes its output.
std::vector<Node*> topological_order(Node* root) {
  std::vector<Node*> order;
  std::unordered_set<Node*> seen;
  // Iterative post-order DFS: deep graphs (long unrolled loops) must not overflow the stack.
  std::vector<std::pair<Node*, std::size_t>> stack{{root, 0}};
  seen.insert(root);
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const Tensor& in = node->inputs[next++];
      if (in.defined() && in.impl()->grad_fn) {
        Node* child = in.impl()->grad_fn.get();
        if (seen.insert(child).second) stack.push_back({child, 0});
      }
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  return {order.rbegin(), order.rend()};
}

void accumulate(Tensor& slot, const Tensor& g) { slot = slot.defined() ? add(slot, g) : g; }

thread_local LeafReady leaf_ready;

// How many rules of the pass may still add to each leaf's gradient (only when a hook listens).
class PendingLeaves {
 public:
  explicit PendingLeaves(const std::vector<Node*>& order) {
    if (!leaf_ready) return;
    for (const Node* node : order)
      for (const Tensor& in : node->inputs)
        if (in.defined() && !in.impl()->grad_fn) ++pending_[in.impl().get()];
  }
  // `node`'s rule ran (or was skipped: nothing flowed to it): its leaves may be complete.
  void done(const Node& node) {
    if (!leaf_ready) return;
    for (const Tensor& in : node.inputs)
      if (in.defined() && !in.impl()->grad_fn && --pending_[in.impl().get()] == 0) leaf_ready(in);
  }

 private:
  std::unordered_map<const TensorImpl*, int> pending_;
};

}  // namespace

ScopedLeafReady::ScopedLeafReady(LeafReady hook) : previous_(std::move(leaf_ready)) { leaf_ready = std::move(hook); }

ScopedLeafReady::~ScopedLeafReady() { leaf_ready = std::move(previous_); }

void run_backward(const Tensor& root) {
  if (!root.defined()) throw Error("backward", "called on an undefined tensor");
  if (root.numel() != 1)
    throw Error("backward",
                "called on a tensor of shape " + root.shape().str() + "; expected a scalar (one element), e.g. a loss");
  if (!root.requires_grad())
    throw Error("backward",
                "the tensor is not part of any graph: no input of the ops that made it "
                "requires grad; expected a result of ops on tensors with set_requires_grad()");
  NoGradGuard no_grad;
  const Tensor seed = Tensor::ones(root.shape(), root.dtype(), root.device());
  TensorImpl& root_impl = *root.impl();
  if (!root_impl.grad_fn) {  // a leaf: d root / d root
    accumulate(root_impl.grad, seed);
    return;
  }
  std::unordered_map<Node*, Tensor> grads;
  grads[root_impl.grad_fn.get()] = seed;
  const std::vector<Node*> order = topological_order(root_impl.grad_fn.get());
  PendingLeaves leaves(order);
  for (Node* node : order) {
    auto it = grads.find(node);
    if (it == grads.end()) {
      leaves.done(*node);
      continue;
    }
    const Tensor grad_output = it->second;
    grads.erase(it);  // free activations' gradients as soon as they are consumed
    std::vector<Tensor> input_grads = node->backward(grad_output);
    for (std::size_t i = 0; i < node->inputs.size() && i < input_grads.size(); ++i) {
      const Tensor& in = node->inputs[i];
      const Tensor& g = input_grads[i];
      if (!in.defined() || !g.defined()) continue;
      if (g.shape() != in.shape())
        throw Error(node->name, "backward produced a gradient of shape " + g.shape().str() + " for an input of shape " +
                                    in.shape().str() + " (internal error)");
      if (in.impl()->grad_fn)
        accumulate(grads[in.impl()->grad_fn.get()], g);
      else
        accumulate(in.impl()->grad, g);
    }
    leaves.done(*node);
  }
}

}  // namespace kiln::autograd
