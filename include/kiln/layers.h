/// Keras-style layers: each owns its weights and calls ops. Shapes exclude the batch dimension.
#pragma once

#include "kiln/activations.h"
#include "kiln/initializers.h"
#include "kiln/layer.h"
#include "kiln/layers/activation.h"
#include "kiln/layers/batch_normalization.h"
#include "kiln/layers/conv2d.h"
#include "kiln/layers/dense.h"
#include "kiln/layers/dropout.h"
#include "kiln/layers/flatten.h"
#include "kiln/layers/merge.h"
#include "kiln/layers/pooling.h"
#include "kiln/layers/preprocessing.h"
#include "kiln/layers/reshaping.h"
#include "kiln/regularizers.h"
