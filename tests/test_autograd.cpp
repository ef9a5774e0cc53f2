// Autograd: accumulation, graph reuse of a tensor, NoGradGuard and the backward() errors.
#include <gtest/gtest.h>

#include "kiln/kiln.h"

using namespace kiln;

TEST(Autograd, ChainRuleAndAccumulation) {
  Tensor x = Tensor::from_vector<double>({2.0, -1.0}, {2});
  x.set_requires_grad();
  sum(mul(x, x)).backward();  // d/dx sum(x^2) = 2x
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{4.0, -2.0}));
  sum(mul(x, 3.0)).backward();  // accumulates: + 3
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{7.0, 1.0}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, TensorUsedTwiceGetsBothContributions) {
  Tensor x = Tensor::from_vector<double>({3.0}, {1});
  x.set_requires_grad();
  Tensor y = add(mul(x, 2.0), square(x));  // 2x + x^2 -> 2 + 2x = 8
  sum(y).backward();
  EXPECT_DOUBLE_EQ(x.grad().item(), 8.0);
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = Tensor::ones({2});
  x.set_requires_grad();
  {
    NoGradGuard guard;
    EXPECT_FALSE(grad_enabled());
    Tensor y = mul(x, 2.0);
    EXPECT_FALSE(y.requires_grad());
  }
  EXPECT_TRUE(grad_enabled());
  EXPECT_TRUE(mul(x, 2.0).requires_grad());
}

TEST(Autograd, BackwardOnNonScalarSaysSo) {
  Tensor x = Tensor::ones({2, 2});
  x.set_requires_grad();
  try {
    mul(x, 2.0).backward();
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "[backward] called on a tensor of shape [2, 2]; expected a scalar (one element), e.g. a loss");
  }
}

TEST(Autograd, BackwardOutsideAnyGraphSaysSo) {
  try {
    sum(Tensor::ones({3})).backward();
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "[backward] the tensor is not part of any graph: no input of the ops that made it requires grad; "
                 "expected a result of ops on tensors with set_requires_grad()");
  }
}

TEST(Autograd, DetachCutsTheGraph) {
  Tensor x = Tensor::ones({2});
  x.set_requires_grad();
  EXPECT_FALSE(mul(x, 2.0).detach().requires_grad());
  EXPECT_THROW(mul(x, 2.0).set_requires_grad(false), Error);
  EXPECT_THROW(Tensor::zeros({2}, DType::Int32).set_requires_grad(), Error);
}

TEST(Autograd, DeepChainDoesNotOverflowTheStack) {
  Tensor x = Tensor::ones({1}, DType::Float64);
  x.set_requires_grad();
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = add(y, 0.0);
  sum(y).backward();
  EXPECT_DOUBLE_EQ(x.grad().item(), 1.0);
}
