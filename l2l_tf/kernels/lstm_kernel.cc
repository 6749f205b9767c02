// Fused element-wise CPU kernels of one layer of the coordinatewise LSTM: forward and backward.
//
// Why: the learned optimizer runs one LSTM over every coordinate of the optimizee, so its cost
// is dominated by element-wise work on [N, 4 * units] gate matrices, which TensorFlow's ops
// write to memory and read back op by op (bias add, split, four activations, the cell update;
// in the backward pass their gradients and the concat of the split's gradient). The matmuls
// stay TensorFlow's (oneDNN/Eigen BLAS, the fastest this machine has for these shapes); what
// comes between them is one pass over the rows here:
//   forward:  z = zx + zh + b, with zx = x W and zh = h U (Keras LSTMCell: gates i, f, g, o)
//             i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g);  c' = f c + i g;  h' = o tanh(c')
//   backward: (dh', dc') -> dz (the gradient of z), dc, and db (dz summed over rows);
//             TensorFlow's matmul gradients turn dz into the gradients of x, h, W and U.
// The forward pass saves [i, f, g, o, tanh(c')] per row ("cache", [N, 5 * units]) so the
// backward pass needs no transcendental function. tanh is computed as 2 sigmoid(2x) - 1 so
// that all activations are one vectorized sigmoid over a contiguous buffer (absolute error
// ~1e-7 against TensorFlow's own sigmoid and tanh). Every row is independent, so the results do
// not depend on how the rows are split among threads.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace l2l_tf {
namespace {

using absl::InvalidArgumentError;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

// Rows per chunk, the unit of work of a thread: the forward pass's gate buffer ([kChunk, 4 * units])
// stays in L1/L2.
constexpr int64_t kChunk = 64;

bool IsMatrix(const Tensor& t, int64_t rows, int64_t cols) {
  return t.dims() == 2 && t.dim_size(0) == rows && t.dim_size(1) == cols;
}

// exp(x) by Cody-Waite range reduction and Cephes' degree-6 polynomial (relative error ~1e-7),
// written so that the compiler vectorizes loops over it; NaN stays NaN, +-inf is clamped.
inline float Exp(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float k = std::floor(x * 1.44269504088896341f + 0.5f);
  const float f = x - k * 0.693359375f + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * f + 1.3981999507e-3f;
  p = p * f + 8.3334519073e-3f;
  p = p * f + 4.1665795894e-2f;
  p = p * f + 1.6666665459e-1f;
  p = p * f + 5.0000001201e-1f;
  const float y = p * f * f + f + 1.0f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  return y * __builtin_bit_cast(float, bits);
}

void Sigmoid(float* __restrict data, int64_t size) {
  for (int64_t j = 0; j < size; ++j) data[j] = 1.0f / (1.0f + Exp(-data[j]));
}

// The per-row loops, as plain functions of restrict pointers (one per gate) so that the
// compiler vectorizes them (inside the kernels' lambdas it does not).

// Gates [i, f, s, o] (s = sigmoid(2 z_g)) and c -> cache [i, f, g, o], c', 2 c' (to be sigmoided).
void CellRow(const float* __restrict z, const float* __restrict c_old, float* __restrict saved,
             float* __restrict c_new, float* __restrict twice_c, int64_t u) {
  const float *__restrict zi = z, *__restrict zf = z + u, *__restrict zg = z + 2 * u, *__restrict zo = z + 3 * u;
  float *__restrict si = saved, *__restrict sf = saved + u, *__restrict sg = saved + 2 * u,
        *__restrict so = saved + 3 * u;
  for (int64_t j = 0; j < u; ++j) {
    const float i = zi[j], f = zf[j], g = 2.0f * zg[j] - 1.0f, o = zo[j];
    si[j] = i;
    sf[j] = f;
    sg[j] = g;
    so[j] = o;
    c_new[j] = f * c_old[j] + i * g;
    twice_c[j] = 2.0f * c_new[j];
  }
}

// sigmoid(2 c') -> tanh(c') into the cache, and h' = o tanh(c').
void OutputRow(const float* __restrict sigmoid_2c, float* __restrict saved, float* __restrict h, int64_t u) {
  const float* __restrict so = saved + 3 * u;
  float* __restrict st = saved + 4 * u;
  for (int64_t j = 0; j < u; ++j) {
    const float tanh_c = 2.0f * sigmoid_2c[j] - 1.0f;
    st[j] = tanh_c;
    h[j] = so[j] * tanh_c;
  }
}

// (dh', dc') and the cache -> dz [di, df, dg, do] (pre-activation gradients) and dc.
void GradRow(const float* __restrict dh, const float* __restrict dcn, const float* __restrict c_old,
             const float* __restrict saved, float* __restrict d, float* __restrict dc, int64_t u) {
  const float *__restrict si = saved, *__restrict sf = saved + u, *__restrict sg = saved + 2 * u,
              *__restrict so = saved + 3 * u, *__restrict st = saved + 4 * u;
  float *__restrict di = d, *__restrict df = d + u, *__restrict dg = d + 2 * u, *__restrict d_o = d + 3 * u;
  for (int64_t j = 0; j < u; ++j) {
    const float i = si[j], f = sf[j], g = sg[j], o = so[j], tanh_c = st[j];
    const float dcell = dcn[j] + dh[j] * o * (1.0f - tanh_c * tanh_c);
    di[j] = dcell * g * i * (1.0f - i);
    df[j] = dcell * c_old[j] * f * (1.0f - f);
    dg[j] = dcell * i * (1.0f - g * g);
    d_o[j] = dh[j] * tanh_c * o * (1.0f - o);
    dc[j] = dcell * f;
  }
}

void AddTo(const float* __restrict values, float* __restrict sum, int64_t size) {
  for (int64_t j = 0; j < size; ++j) sum[j] += values[j];
}

// Runs work(first_chunk, end_chunk) over the threads of TensorFlow's intra-op pool.
void RunChunks(OpKernelContext* ctx, int64_t chunks, int64_t cost_per_chunk,
               const std::function<void(int64_t, int64_t)>& work) {
  ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(chunks, cost_per_chunk, work);
}

// kSaveCache: L2LLstmGates (outputs h', c' and the cache for the gradient) or
// L2LLstmGatesInference (h' and c' only: when nothing will differentiate the step, e.g. a Keras
// optimizer update, the [N, 5 * units] cache would be memory written for nothing).
template <bool kSaveCache>
class LstmGatesOp : public OpKernel {
 public:
  explicit LstmGatesOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  // Inputs: zx [N, 4U], zh [N, 4U], bias [4U], c [N, U]. Outputs: h' [N, U], c' [N, U] (, cache [N, 5U]).
  void Compute(OpKernelContext* ctx) override {
    const Tensor &zx = ctx->input(0), &zh = ctx->input(1), &bias = ctx->input(2), &c = ctx->input(3);
    OP_REQUIRES(ctx, c.dims() == 2, InvalidArgumentError("c must be a matrix [N, units]"));
    const int64_t rows = c.dim_size(0), u = c.dim_size(1), g4 = 4 * u;
    OP_REQUIRES(ctx, IsMatrix(zx, rows, g4) && IsMatrix(zh, rows, g4),
                InvalidArgumentError("zx and zh must be [N, 4 * units] for c of [N, units]"));
    OP_REQUIRES(ctx, bias.dims() == 1 && bias.dim_size(0) == g4, InvalidArgumentError("bias must be [4 * units]"));
    Tensor *h_out, *c_out, *cache = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({rows, u}), &h_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({rows, u}), &c_out));
    if (kSaveCache) OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({rows, 5 * u}), &cache));
    const float *zx_p = zx.flat<float>().data(), *zh_p = zh.flat<float>().data(), *b_p = bias.flat<float>().data(),
                *c_p = c.flat<float>().data();
    float *h_p = h_out->flat<float>().data(), *cn_p = c_out->flat<float>().data(),
          *cache_p = kSaveCache ? cache->flat<float>().data() : nullptr;
    // The cell candidate's pre-activation is doubled: tanh(x) = 2 sigmoid(2x) - 1.
    std::vector<float> scale(g4, 1.0f);
    std::fill(scale.begin() + 2 * u, scale.begin() + 3 * u, 2.0f);

    // Work is shared out in chunks of kChunk rows; each shard allocates its scratch once.
    auto work = [&](int64_t chunk_begin, int64_t chunk_end) {
      std::unique_ptr<float[]> z(new float[kChunk * g4]), t(new float[kChunk * u]),
          scratch(kSaveCache ? nullptr : new float[kChunk * 5 * u]);
      // Row `row` (the r-th of its chunk) keeps [i, f, g, o, tanh(c')] in the cache, or in scratch.
      auto saved = [&](int64_t row, int64_t r) {
        return kSaveCache ? cache_p + row * 5 * u : scratch.get() + r * 5 * u;
      };
      for (int64_t start = chunk_begin * kChunk; start < std::min(rows, chunk_end * kChunk); start += kChunk) {
        const int64_t n = std::min(kChunk, rows - start);
        for (int64_t r = 0; r < n; ++r) {
          const float* __restrict a = zx_p + (start + r) * g4;
          const float* __restrict b = zh_p + (start + r) * g4;
          float* __restrict zr = z.get() + r * g4;
          for (int64_t j = 0; j < g4; ++j) zr[j] = (a[j] + b[j] + b_p[j]) * scale[j];
        }
        Sigmoid(z.get(), n * g4);
        for (int64_t r = 0; r < n; ++r) {
          const int64_t row = start + r;
          CellRow(z.get() + r * g4, c_p + row * u, saved(row, r), cn_p + row * u, t.get() + r * u, u);
        }
        Sigmoid(t.get(), n * u);
        for (int64_t r = 0; r < n; ++r) {
          const int64_t row = start + r;
          OutputRow(t.get() + r * u, saved(row, r), h_p + row * u, u);
        }
      }
    };
    RunChunks(ctx, (rows + kChunk - 1) / kChunk, kChunk * 200 * u, work);
  }
};

class LstmGatesGradOp : public OpKernel {
 public:
  explicit LstmGatesGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  // Inputs: dh' [N, U], dc' [N, U], c [N, U], cache [N, 5U]. Outputs: dz [N, 4U], dc [N, U] and
  // dbias [4U] (dz summed over rows).
  void Compute(OpKernelContext* ctx) override {
    const Tensor &dh_out = ctx->input(0), &dc_out = ctx->input(1), &c = ctx->input(2), &cache = ctx->input(3);
    OP_REQUIRES(ctx, c.dims() == 2, InvalidArgumentError("c must be a matrix [N, units]"));
    const int64_t rows = c.dim_size(0), u = c.dim_size(1);
    OP_REQUIRES(ctx, IsMatrix(dh_out, rows, u) && IsMatrix(dc_out, rows, u),
                InvalidArgumentError("dh_out and dc_out must be [N, units] like c"));
    OP_REQUIRES(ctx, IsMatrix(cache, rows, 5 * u), InvalidArgumentError("cache must be [N, 5 * units]"));
    const int64_t g4 = 4 * u, chunks = (rows + kChunk - 1) / kChunk;
    Tensor *dz, *dc, *dbias, partial;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({rows, g4}), &dz));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({rows, u}), &dc));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({g4}), &dbias));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_FLOAT, TensorShape({std::max<int64_t>(chunks, 1), g4}),
                                           &partial));
    const float *dh_p = dh_out.flat<float>().data(), *dcn_p = dc_out.flat<float>().data(),
                *c_p = c.flat<float>().data(), *cache_p = cache.flat<float>().data();
    float *dz_p = dz->flat<float>().data(), *dc_p = dc->flat<float>().data(),
          *partial_p = partial.flat<float>().data();

    // The bias gradient (dz summed over rows) is summed per chunk while dz is in cache, then
    // the chunks' sums in order: the same result for any number of threads.
    auto work = [&](int64_t chunk_begin, int64_t chunk_end) {
      for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
        float* __restrict sum = partial_p + chunk * g4;
        std::fill(sum, sum + g4, 0.0f);
        for (int64_t row = chunk * kChunk; row < std::min(rows, (chunk + 1) * kChunk); ++row) {
          float* d = dz_p + row * g4;
          GradRow(dh_p + row * u, dcn_p + row * u, c_p + row * u, cache_p + row * 5 * u, d, dc_p + row * u, u);
          AddTo(d, sum, g4);
        }
      }
    };
    RunChunks(ctx, chunks, kChunk * 100 * u, work);
    float* __restrict total = dbias->flat<float>().data();
    std::fill(total, total + g4, 0.0f);
    for (int64_t chunk = 0; chunk < chunks; ++chunk) AddTo(partial_p + chunk * g4, total, g4);
  }
};

absl::Status GatesShape(InferenceContext* ctx) {
  ShapeHandle c;
  TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(3), 2, &c));
  DimensionHandle cache_cols;
  TF_RETURN_IF_ERROR(ctx->Multiply(ctx->Dim(c, 1), 5, &cache_cols));
  ctx->set_output(0, c);
  ctx->set_output(1, c);
  ctx->set_output(2, ctx->Matrix(ctx->Dim(c, 0), cache_cols));
  return absl::OkStatus();
}

absl::Status GatesInferenceShape(InferenceContext* ctx) {
  ShapeHandle c;
  TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(3), 2, &c));
  ctx->set_output(0, c);
  ctx->set_output(1, c);
  return absl::OkStatus();
}

absl::Status GatesGradShape(InferenceContext* ctx) {
  ShapeHandle c;
  TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(2), 2, &c));
  DimensionHandle gate_cols;
  TF_RETURN_IF_ERROR(ctx->Multiply(ctx->Dim(c, 1), 4, &gate_cols));
  ctx->set_output(0, ctx->Matrix(ctx->Dim(c, 0), gate_cols));
  ctx->set_output(1, c);
  ctx->set_output(2, ctx->Vector(gate_cols));
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("L2LLstmGates")
    .Input("zx: float")
    .Input("zh: float")
    .Input("bias: float")
    .Input("c: float")
    .Output("h_out: float")
    .Output("c_out: float")
    .Output("cache: float")
    .SetShapeFn(GatesShape)
    .Doc("Keras LSTMCell's gates and cell update from z = zx + zh + bias; cache = [i, f, g, o, tanh(c')].");

REGISTER_OP("L2LLstmGatesInference")
    .Input("zx: float")
    .Input("zh: float")
    .Input("bias: float")
    .Input("c: float")
    .Output("h_out: float")
    .Output("c_out: float")
    .SetShapeFn(GatesInferenceShape)
    .Doc("L2LLstmGates without the cache, for steps nothing differentiates (it has no gradient).");

REGISTER_OP("L2LLstmGatesGrad")
    .Input("dh_out: float")
    .Input("dc_out: float")
    .Input("c: float")
    .Input("cache: float")
    .Output("dz: float")
    .Output("dc: float")
    .Output("dbias: float")
    .SetShapeFn(GatesGradShape)
    .Doc("The gradient of L2LLstmGates: dz (that of zx and of zh), dc, and dbias (dz summed over rows).");

REGISTER_KERNEL_BUILDER(Name("L2LLstmGates").Device(tensorflow::DEVICE_CPU), LstmGatesOp<true>);
REGISTER_KERNEL_BUILDER(Name("L2LLstmGatesInference").Device(tensorflow::DEVICE_CPU), LstmGatesOp<false>);
REGISTER_KERNEL_BUILDER(Name("L2LLstmGatesGrad").Device(tensorflow::DEVICE_CPU), LstmGatesGradOp);

}  // namespace l2l_tf
