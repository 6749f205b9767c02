// Fused CPU kernels of one layer of the coordinatewise LSTM: forward and backward, matmuls included.
//
// Why: the learned optimizer runs one small LSTM over every coordinate of the optimizee: for
// N coordinates a layer is two [N, K] x [K, 4 * units] matmuls and element-wise work on the
// [N, 4 * units] gate matrix. Done op by op, TensorFlow writes the gate pre-activations of every
// coordinate to memory and reads them back several times in each pass. Here each block of
// kChunk rows is computed start to finish while it sits in L1: the gate pre-activations come
// out of a register-tiled matmul into a small scratch buffer and never reach memory (measured in
// RESULTS.md, "Speed, memory and scale": 1.4x faster updates at 1e7 coordinates than oneDNN's
// matmuls around a fused gate op, 16% less meta-training memory, meta-training itself level).
//   forward:  z = x W + h U + b (Keras LSTMCell: gates i, f, g, o)
//             i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g);  c' = f c + i g;  h' = o tanh(c')
//   backward: (dh', dc') -> dz (the gradient of z, in scratch only), then dx = dz W^T,
//             dh = dz U^T, dc, and dW = x^T dz, dU = h^T dz, db = sum of dz over rows.
// The forward pass saves [i, f, g, o, tanh(c')] per row ("cache", [N, 5 * units]) so the
// backward pass needs no transcendental function. tanh is computed as 2 sigmoid(2x) - 1 so
// that all activations are one vectorized sigmoid over a contiguous buffer (absolute error
// ~1e-7 against TensorFlow's own sigmoid and tanh); the doubling of z_g is folded into packed
// copies of the weights (exact: a power of two). Rows are independent in the forward pass and
// in dx, dh, dc; the weight gradients are summed over fixed blocks of rows (their number depends
// on N only), then block after block, so every result is the same for any number of threads.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
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

// Rows per chunk, the unit of work between two matmul tiles: the chunk's gate buffer
// ([kChunk, 4 * units] rounded up to whole vectors: 10 KB for 20 units) stays in L1.
constexpr int64_t kChunk = 32;
// At most this many row blocks carry partial weight gradients (memory: blocks x weights).
constexpr int64_t kMaxBlocks = 64;
// Rows per block at least (fewer blocks than threads for small N: there is little to share).
constexpr int64_t kMinBlockRows = 1024;

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


// ---- A register-tiled matmul for the layer's shapes (K <= a few dozen, 4 * units columns).
// GCC vector extensions: one Vec is 16 floats (one AVX-512 register, two AVX2 ones); the
// compiler picks the instructions for -march=native.
constexpr int kLanes = 16;
constexpr int kMaxVectors = 6;  // per tile: rows x vectors accumulators + vectors operands <= 32 registers
typedef float Vec __attribute__((vector_size(64)));
typedef float UnalignedVec __attribute__((vector_size(64), aligned(4)));

inline Vec Load(const float* p) { return *reinterpret_cast<const UnalignedVec*>(p); }
// An empty asm statement that takes v in a vector register: the compiler must materialize it
// there (rather than fold the load into every instruction that uses it). Only where one Vec
// is one register (AVX-512): elsewhere (AVX2, SSE, NEON) a Vec spans several registers, no
// register constraint can hold it ("impossible constraint in asm"), and the hint is dropped.
inline void KeepInRegister(Vec& v) {
#if defined(__AVX512F__)
  asm("" : "+v"(v));
#else
  (void)v;
#endif
}

// All lanes x (a broadcast; `Vec{} + x` would add 0.0f first, to keep -0.0f's sign).
inline Vec Splat(float x) { return Vec{x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }
inline void Store(float* p, Vec v) { *reinterpret_cast<UnalignedVec*>(p) = v; }

int64_t RoundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// The left operand of a matmul: element (r, l) of an R x length block is
// data[r * row + l * step]. Two of them can be chained along l (a second one with length 0 is
// none): [x | h] without copying x and h side by side.
struct Operand {
  const float* data;
  int64_t row, step, length;
};

template <int R, int V>
inline void Accumulate(const Operand& a, const float* __restrict b, int64_t ldb, Vec (&acc)[R][V]) {
  for (int64_t l = 0; l < a.length; ++l) {
    Vec bv[V];
    for (int v = 0; v < V; ++v) {
      bv[v] = Load(b + l * ldb + kLanes * v);
      // Keeps the operand in a register: folded into each FMA instead, it is loaded R times
      // (Zen 4 loads one 64-byte vector per cycle, so that would bound the tile at R / (R + 1) FMA/cycle).
      KeepInRegister(bv[v]);
    }
    for (int r = 0; r < R; ++r) {
      const Vec s = Splat(a.data[r * a.row + l * a.step]);
      for (int v = 0; v < V; ++v) acc[r][v] += s * bv[v];
    }
  }
}

// c[r][0 : 16 V] = init + sum_l [a0 | a1](r, l) * b[l * ldb + 0 : 16 V] for r < R, where init is
// one row for all (or zero if null). Everything stays in registers.
template <int R, int V>
void Tile(const Operand& a0, const Operand& a1, const float* __restrict b, int64_t ldb, float* __restrict c,
          int64_t ldc, const float* __restrict init) {
  Vec acc[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = init ? Load(init + kLanes * v) : Vec{};
  Accumulate<R, V>(a0, b, ldb, acc);
  Accumulate<R, V>(a1, b + a0.length * ldb, ldb, acc);
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) Store(c + r * ldc + kLanes * v, acc[r][v]);
}

using TileFunction = void (*)(const Operand&, const Operand&, const float*, int64_t, float*, int64_t,
                              const float*);

// Rows per tile for V vectors of columns: as many accumulators as fit beside V operands.
constexpr int TileRows(int v) { return v >= 5 ? 4 : v == 4 ? 6 : 8; }
constexpr int kMaxTileRows = 8;

template <int V, int... R>
constexpr std::array<TileFunction, kMaxTileRows> RowTiles(std::integer_sequence<int, R...>) {
  return {Tile<R + 1, V>...};
}
template <int... V>
constexpr std::array<std::array<TileFunction, kMaxTileRows>, kMaxVectors> AllTiles(std::integer_sequence<int, V...>) {
  return {RowTiles<V + 1>(std::make_integer_sequence<int, kMaxTileRows>())...};
}
// kTiles[V - 1][R - 1] = Tile<R, V>.
constexpr auto kTiles = AllTiles(std::make_integer_sequence<int, kMaxVectors>());

// c[r, 0 : 16 vectors] = init + sum_l [a0 | a1](r, l) * b[l, :] for r < rows: the row tiles and
// column blocks that make up one matmul (b, c and init have 16 * vectors columns, zero-padded).
void MatMul(const Operand& a0, const Operand& a1, int64_t rows, const float* b, int64_t ldb, int64_t vectors,
            float* c, int64_t ldc, const float* init = nullptr) {
  for (int64_t v = 0; v < vectors; v += kMaxVectors) {
    const int64_t block = std::min<int64_t>(kMaxVectors, vectors - v);
    const int64_t tile_rows = TileRows(block);
    for (int64_t r = 0; r < rows; r += tile_rows) {
      const Operand t0{a0.data + r * a0.row, a0.row, a0.step, a0.length},
          t1{a1.data + r * a1.row, a1.row, a1.step, a1.length};
      kTiles[block - 1][std::min(tile_rows, rows - r) - 1](t0, t1, b + v * kLanes, ldb, c + r * ldc + v * kLanes,
                                                           ldc, init ? init + v * kLanes : nullptr);
    }
  }
}

constexpr Operand kNone{nullptr, 0, 0, 0};

// Runs work(first, end) over the threads of TensorFlow's intra-op pool.
void RunParallel(OpKernelContext* ctx, int64_t units, int64_t cost_per_unit,
                 const std::function<void(int64_t, int64_t)>& work) {
  ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(units, cost_per_unit, work);
}

// Validates the layer's inputs x [N, K], h [N, U], c [N, U], kernel [K, 4U], recurrent [U, 4U].
absl::Status ValidLayer(const Tensor& x, const Tensor& h, const Tensor& c, const Tensor& kernel,
                        const Tensor& recurrent) {
  if (x.dims() != 2 || c.dims() != 2) return InvalidArgumentError("x and c must be matrices [N, ...]");
  const int64_t rows = c.dim_size(0), u = c.dim_size(1), k = x.dim_size(1);
  if (x.dim_size(0) != rows || !IsMatrix(h, rows, u))
    return InvalidArgumentError("x, h and c must have the same rows; h and c the same units");
  if (!IsMatrix(kernel, k, 4 * u) || !IsMatrix(recurrent, u, 4 * u))
    return InvalidArgumentError("kernel must be [inputs, 4 * units] and recurrent_kernel [units, 4 * units]");
  return absl::OkStatus();
}

// Appends rows of the layer's weights as the forward pass reads them: padded to whole vectors
// (gp columns), the cell candidate's columns doubled (tanh(x) = 2 sigmoid(2x) - 1).
void PackForward(const float* w, int64_t rows, int64_t u, int64_t gp, std::vector<float>& packed) {
  const int64_t first = packed.size();
  packed.resize(first + rows * gp, 0.0f);
  for (int64_t k = 0; k < rows; ++k)
    for (int64_t j = 0; j < 4 * u; ++j)
      packed[first + k * gp + j] = w[k * 4 * u + j] * (j / u == 2 ? 2.0f : 1.0f);
}

// dst[0 : n] = src[0 : n] for a few dozen floats: inline (GCC would call memmove per row).
__attribute__((optimize("no-tree-loop-distribute-patterns")))
inline void CopyRow(const float* __restrict src, float* __restrict dst, int64_t n) {
  for (int64_t j = 0; j < n; ++j) dst[j] = src[j];
}

// kSaveCache: L2LLstmLayer (outputs h', c' and the cache for the gradient) or
// L2LLstmLayerInference (h' and c' only: when nothing will differentiate the step, e.g. a Keras
// optimizer update, the [N, 5 * units] cache would be memory written for nothing).
template <bool kSaveCache>
class LstmLayerOp : public OpKernel {
 public:
  explicit LstmLayerOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  // Inputs: x [N, K], h [N, U], c [N, U], kernel [K, 4U], recurrent [U, 4U], bias [4U].
  // Outputs: h' [N, U], c' [N, U] (, cache [N, 5U]).
  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &h = ctx->input(1), &c = ctx->input(2), &kernel = ctx->input(3),
                 &recurrent = ctx->input(4), &bias = ctx->input(5);
    OP_REQUIRES_OK(ctx, ValidLayer(x, h, c, kernel, recurrent));
    const int64_t rows = c.dim_size(0), u = c.dim_size(1), kx = x.dim_size(1), g4 = 4 * u,
                  gp = RoundUp(g4, kLanes);
    OP_REQUIRES(ctx, bias.dims() == 1 && bias.dim_size(0) == g4, InvalidArgumentError("bias must be [4 * units]"));
    Tensor *h_out, *c_out, *cache = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({rows, u}), &h_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({rows, u}), &c_out));
    if (kSaveCache) OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({rows, 5 * u}), &cache));
    const float *x_p = x.flat<float>().data(), *h_p = h.flat<float>().data(), *c_p = c.flat<float>().data();
    float *h_new = h_out->flat<float>().data(), *c_new = c_out->flat<float>().data(),
          *cache_p = kSaveCache ? cache->flat<float>().data() : nullptr;
    std::vector<float> w, b;  // [kernel; recurrent] and bias: z = [x | h] w + b
    PackForward(kernel.flat<float>().data(), kx, u, gp, w);
    PackForward(recurrent.flat<float>().data(), u, u, gp, w);
    PackForward(bias.flat<float>().data(), 1, u, gp, b);

    // Work is shared out in chunks of kChunk rows; each shard allocates its scratch once.
    auto work = [&](int64_t chunk_begin, int64_t chunk_end) {
      std::unique_ptr<float[]> z(new float[kChunk * gp]), t(new float[kChunk * u]),
          scratch(kSaveCache ? nullptr : new float[kChunk * 5 * u]);
      // Row `row` (the r-th of its chunk) keeps [i, f, g, o, tanh(c')] in the cache, or in scratch.
      auto saved = [&](int64_t row, int64_t r) {
        return kSaveCache ? cache_p + row * 5 * u : scratch.get() + r * 5 * u;
      };
      for (int64_t start = chunk_begin * kChunk; start < std::min(rows, chunk_end * kChunk); start += kChunk) {
        const int64_t n = std::min(kChunk, rows - start);
        MatMul({x_p + start * kx, kx, 1, kx}, {h_p + start * u, u, 1, u}, n, w.data(), gp, gp / kLanes, z.get(), gp,
               b.data());
        Sigmoid(z.get(), n * gp);
        for (int64_t r = 0; r < n; ++r) {
          const int64_t row = start + r;
          CellRow(z.get() + r * gp, c_p + row * u, saved(row, r), c_new + row * u, t.get() + r * u, u);
        }
        Sigmoid(t.get(), n * u);
        for (int64_t r = 0; r < n; ++r) {
          const int64_t row = start + r;
          OutputRow(t.get() + r * u, saved(row, r), h_new + row * u, u);
        }
      }
    };
    RunParallel(ctx, (rows + kChunk - 1) / kChunk, kChunk * (2 * (kx + u) * gp + 100 * u), work);
  }
};

class LstmLayerGradOp : public OpKernel {
 public:
  explicit LstmLayerGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  // Inputs: dh' [N, U], dc' [N, U], x [N, K], h [N, U], c [N, U], kernel [K, 4U], recurrent [U, 4U],
  // cache [N, 5U]. Outputs: dx, dh, dc, dkernel, drecurrent, dbias.
  void Compute(OpKernelContext* ctx) override {
    const Tensor &dh_out = ctx->input(0), &dc_out = ctx->input(1), &x = ctx->input(2), &h = ctx->input(3),
                 &c = ctx->input(4), &kernel = ctx->input(5), &recurrent = ctx->input(6), &cache = ctx->input(7);
    OP_REQUIRES_OK(ctx, ValidLayer(x, h, c, kernel, recurrent));
    const int64_t rows = c.dim_size(0), u = c.dim_size(1), kx = x.dim_size(1), g4 = 4 * u,
                  gp = RoundUp(g4, kLanes), inputs = kx + u, kp = RoundUp(inputs, kLanes);
    OP_REQUIRES(ctx, IsMatrix(dh_out, rows, u) && IsMatrix(dc_out, rows, u),
                InvalidArgumentError("dh_out and dc_out must be [N, units] like c"));
    OP_REQUIRES(ctx, IsMatrix(cache, rows, 5 * u), InvalidArgumentError("cache must be [N, 5 * units]"));
    Tensor *dx, *dh, *dc, *dkernel, *drecurrent, *dbias, partial;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({rows, kx}), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({rows, u}), &dh));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({rows, u}), &dc));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({kx, g4}), &dkernel));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, TensorShape({u, g4}), &drecurrent));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(5, TensorShape({g4}), &dbias));
    // Row blocks: a function of N only (never of the thread count), so the sums are reproducible.
    const int64_t blocks = std::max<int64_t>(1, std::min(kMaxBlocks, rows / kMinBlockRows));
    const int64_t block_rows = RoundUp((rows + blocks - 1) / blocks, kChunk);
    const int64_t partial_size = (inputs + 1) * gp;  // [dkernel; drecurrent; dbias] rows, padded
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_FLOAT, TensorShape({blocks, partial_size}), &partial));
    const float *dh_p = dh_out.flat<float>().data(), *dcn_p = dc_out.flat<float>().data(),
                *x_p = x.flat<float>().data(), *h_p = h.flat<float>().data(), *c_p = c.flat<float>().data(),
                *cache_p = cache.flat<float>().data(), *w_p = kernel.flat<float>().data(),
                *u_p = recurrent.flat<float>().data();
    float *dx_p = dx->flat<float>().data(), *dh_new = dh->flat<float>().data(), *dc_p = dc->flat<float>().data(),
          *partial_p = partial.flat<float>().data();
    // [kernel; recurrent] transposed: row j holds gate column j's weights of all inputs (kp columns).
    std::vector<float> wt(g4 * kp, 0.0f);
    for (int64_t j = 0; j < g4; ++j)
      for (int64_t k = 0; k < inputs; ++k) wt[j * kp + k] = k < kx ? w_p[k * g4 + j] : u_p[(k - kx) * g4 + j];

    auto work = [&](int64_t block_begin, int64_t block_end) {
      // dz's padding stays 0. The chunk's own weight gradients are summed first, then added to
      // the block's: two short sums instead of one long one (about as accurate as TensorFlow's).
      std::unique_ptr<float[]> dz(new float[kChunk * gp]()), da(new float[kChunk * kp]),
          chunk_sums(new float[partial_size]);
      float* chunk_dbias = chunk_sums.get() + inputs * gp;
      for (int64_t block = block_begin; block < block_end; ++block) {
        float* __restrict sums = partial_p + block * partial_size;
        std::fill(sums, sums + partial_size, 0.0f);
        const int64_t end = std::min(rows, (block + 1) * block_rows);
        for (int64_t start = block * block_rows; start < end; start += kChunk) {
          const int64_t n = std::min(kChunk, end - start);
          std::fill(chunk_dbias, chunk_dbias + gp, 0.0f);
          for (int64_t r = 0; r < n; ++r) {
            const int64_t row = start + r;
            GradRow(dh_p + row * u, dcn_p + row * u, c_p + row * u, cache_p + row * 5 * u, dz.get() + r * gp,
                    dc_p + row * u, u);
            AddTo(dz.get() + r * gp, chunk_dbias, g4);
          }
          // [dx, dh] = dz [kernel; recurrent]^T, then split into the two outputs.
          MatMul({dz.get(), gp, 1, g4}, kNone, n, wt.data(), kp, kp / kLanes, da.get(), kp);
          for (int64_t r = 0; r < n; ++r) {
            CopyRow(da.get() + r * kp, dx_p + (start + r) * kx, kx);
            CopyRow(da.get() + r * kp + kx, dh_new + (start + r) * u, u);
          }
          // dkernel = x^T dz and drecurrent = h^T dz over the chunk's rows (row k of x^T is x[k + r * K]).
          MatMul({x_p + start * kx, 1, kx, n}, kNone, kx, dz.get(), gp, gp / kLanes, chunk_sums.get(), gp);
          MatMul({h_p + start * u, 1, u, n}, kNone, u, dz.get(), gp, gp / kLanes, chunk_sums.get() + kx * gp, gp);
          AddTo(chunk_sums.get(), sums, partial_size);
        }
      }
    };
    RunParallel(ctx, blocks, block_rows * (4 * inputs * gp + 50 * u), work);
    std::vector<float> total(partial_size, 0.0f);
    for (int64_t block = 0; block < blocks; ++block) AddTo(partial_p + block * partial_size, total.data(), partial_size);
    float *dk = dkernel->flat<float>().data(), *dr = drecurrent->flat<float>().data(),
          *db = dbias->flat<float>().data();
    for (int64_t k = 0; k < kx; ++k) std::copy(&total[k * gp], &total[k * gp] + g4, dk + k * g4);
    for (int64_t k = 0; k < u; ++k) std::copy(&total[(kx + k) * gp], &total[(kx + k) * gp] + g4, dr + k * g4);
    std::copy(&total[inputs * gp], &total[inputs * gp] + g4, db);
  }
};

absl::Status LayerShape(InferenceContext* ctx, bool with_cache) {
  ShapeHandle c;
  TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(2), 2, &c));
  ctx->set_output(0, c);
  ctx->set_output(1, c);
  if (with_cache) {
    DimensionHandle cache_cols;
    TF_RETURN_IF_ERROR(ctx->Multiply(ctx->Dim(c, 1), 5, &cache_cols));
    ctx->set_output(2, ctx->Matrix(ctx->Dim(c, 0), cache_cols));
  }
  return absl::OkStatus();
}

absl::Status LayerGradShape(InferenceContext* ctx) {
  ShapeHandle x, c, kernel, recurrent;
  TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(2), 2, &x));
  TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(4), 2, &c));
  TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(5), 2, &kernel));
  TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(6), 2, &recurrent));
  ctx->set_output(0, x);
  ctx->set_output(1, c);
  ctx->set_output(2, c);
  ctx->set_output(3, kernel);
  ctx->set_output(4, recurrent);
  ctx->set_output(5, ctx->Vector(ctx->Dim(kernel, 1)));
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("L2LLstmLayer")
    .Input("x: float")
    .Input("h: float")
    .Input("c: float")
    .Input("kernel: float")
    .Input("recurrent_kernel: float")
    .Input("bias: float")
    .Output("h_out: float")
    .Output("c_out: float")
    .Output("cache: float")
    .SetShapeFn([](InferenceContext* ctx) { return LayerShape(ctx, true); })
    .Doc("One Keras LSTMCell step on every row; cache = [i, f, g, o, tanh(c')] for the gradient.");

REGISTER_OP("L2LLstmLayerInference")
    .Input("x: float")
    .Input("h: float")
    .Input("c: float")
    .Input("kernel: float")
    .Input("recurrent_kernel: float")
    .Input("bias: float")
    .Output("h_out: float")
    .Output("c_out: float")
    .SetShapeFn([](InferenceContext* ctx) { return LayerShape(ctx, false); })
    .Doc("L2LLstmLayer without the cache, for steps nothing differentiates (it has no gradient).");

REGISTER_OP("L2LLstmLayerGrad")
    .Input("dh_out: float")
    .Input("dc_out: float")
    .Input("x: float")
    .Input("h: float")
    .Input("c: float")
    .Input("kernel: float")
    .Input("recurrent_kernel: float")
    .Input("cache: float")
    .Output("dx: float")
    .Output("dh: float")
    .Output("dc: float")
    .Output("dkernel: float")
    .Output("drecurrent_kernel: float")
    .Output("dbias: float")
    .SetShapeFn(LayerGradShape)
    .Doc("The gradient of L2LLstmLayer with respect to all its inputs but the bias's own value.");

REGISTER_KERNEL_BUILDER(Name("L2LLstmLayer").Device(tensorflow::DEVICE_CPU), LstmLayerOp<true>);
REGISTER_KERNEL_BUILDER(Name("L2LLstmLayerInference").Device(tensorflow::DEVICE_CPU), LstmLayerOp<false>);
REGISTER_KERNEL_BUILDER(Name("L2LLstmLayerGrad").Device(tensorflow::DEVICE_CPU), LstmLayerGradOp);

}  // namespace l2l_tf
