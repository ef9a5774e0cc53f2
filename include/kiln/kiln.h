/// kiln: the whole public API in one include.
#pragma once

#include "kiln/autograd.h"
#include "kiln/callbacks.h"
#include "kiln/config.h"
#include "kiln/device.h"
#include "kiln/dtype.h"
#include "kiln/error.h"
#include "kiln/layers.h"
#include "kiln/losses.h"
#include "kiln/memory.h"
#include "kiln/model.h"
#include "kiln/ops.h"
#include "kiln/optimizers.h"
#include "kiln/random.h"
#include "kiln/shape.h"
#include "kiln/tensor.h"
