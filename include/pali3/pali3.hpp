// Everything in pali3 that needs no optional dependency (sentencepiece, stb).
#pragma once

#include "pali3/core/error.hpp"
#include "pali3/core/storage.hpp"
#include "pali3/core/tensor.hpp"
#include "pali3/core/threading.hpp"
#include "pali3/kernels/activation.hpp"
#include "pali3/kernels/elementwise.hpp"
#include "pali3/kernels/gemm.hpp"
#include "pali3/kernels/gemv.hpp"
#include "pali3/kernels/matrix.hpp"
#include "pali3/kernels/norm.hpp"
#include "pali3/kernels/reference.hpp"
#include "pali3/kernels/simd.hpp"
#include "pali3/kernels/softmax.hpp"
