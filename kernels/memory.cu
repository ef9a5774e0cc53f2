// The memory family: copies, fill, cast, row gather, the step counter; and the layout helpers of
// the cuDNN convolution: 2-D transposes (HWIO <-> KRSC filters, NHWC <-> NCHW for NCHW-only
// engines) and NHWC zero padding / cropping (for TensorFlow's asymmetric "same" padding, which
// cuDNN's symmetric padding cannot express).
// Shape letters: N batch, H/W height/width, C channels, HP/WP padded height/width.
#include <cstring>
#include <mutex>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/dtype_dispatch.h"
#include "half_types.cuh"

namespace kiln::backend {

namespace {

// ---------------------------------------------------------------------------------------------
// kernels

template <typename T>
__global__ void fill_kernel(T* dst, int64_t n, T value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = value;
}

template <typename From, typename To>
__global__ void cast_kernel(const From* src, To* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = kernels::convert_element<To>(src[i]);
}

// One thread per word of `Word` bytes; rows are whole words (checked by the launcher).
template <typename Word>
__global__ void gather_rows_kernel(const Word* src, const int32_t* idx, Word* dst, int64_t n_idx,
                                   int64_t words_per_row) {
  const int64_t total = n_idx * words_per_row;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / words_per_row, word = i % words_per_row;
    dst[i] = src[int64_t(idx[row]) * words_per_row + word];
  }
}

__global__ void select_batch_kernel(const int32_t* perm, const int64_t* index, int32_t* idx, int64_t n) {
  const int32_t* from = perm + *index * n;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    idx[i] = from[i];
}

__global__ void advance_counter_kernel(int64_t* counter) { ++*counter; }

// 32x32 tiles through shared memory so both the read and the write are coalesced; grid z walks
// the matrices of a batch and grid y their row tiles, each in turns past the grid's limit of 65535
// (an image of more than 2M pixels has more row tiles).
template <typename T>
__global__ void transpose_kernel(const T* in, T* out, int64_t batch, int64_t rows, int64_t cols) {
  __shared__ T tile[32][33];
  const int64_t c0 = int64_t(blockIdx.x) * 32;
  for (int64_t b = blockIdx.z; b < batch; b += gridDim.z)
    for (int64_t r0 = int64_t(blockIdx.y) * 32; r0 < rows; r0 += int64_t(gridDim.y) * 32) {
      const T* from = in + b * rows * cols;
      T* to = out + b * rows * cols;
      for (int j = threadIdx.y; j < 32; j += blockDim.y) {
        const int64_t r = r0 + j, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[j][threadIdx.x] = from[r * cols + c];
      }
      __syncthreads();
      for (int j = threadIdx.y; j < 32; j += blockDim.y) {
        const int64_t c = c0 + j, r = r0 + threadIdx.x;
        if (r < rows && c < cols) to[c * rows + r] = tile[threadIdx.x][j];
      }
      __syncthreads();  // the tile is refilled for the next tile
    }
}

template <typename T>
__global__ void pad_kernel(const T* x, T* xp, int64_t N, int64_t H, int64_t W, int64_t C, int64_t HP, int64_t WP,
                           int64_t top, int64_t left) {
  const int64_t total = N * HP * WP * C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % C, wp = (i / C) % WP, hp = (i / (C * WP)) % HP, n = i / (C * WP * HP);
    const int64_t h = hp - top, w = wp - left;
    xp[i] = (h >= 0 && h < H && w >= 0 && w < W) ? x[((n * H + h) * W + w) * C + c] : T(0);
  }
}

template <typename T>
__global__ void crop_kernel(const T* dxp, T* dx, int64_t N, int64_t H, int64_t W, int64_t C, int64_t HP, int64_t WP,
                            int64_t top, int64_t left) {
  const int64_t total = N * H * W * C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % C, w = (i / C) % W, h = (i / (C * W)) % H, n = i / (C * W * H);
    const int64_t hp = h + top, wp = w + left;
    dx[i] = (hp < HP && wp < WP) ? dxp[((n * HP + hp) * WP + wp) * C + c] : T(0);
  }
}

// Up to kMaxCopies parts of scaled_copy_multi per launch (the argument block stays under 4 KiB).
constexpr int kMaxCopies = 48;

template <typename T>
struct ScaledCopyBatch {
  const T* src[kMaxCopies];
  T* dst[kMaxCopies];
  T scale[kMaxCopies];
  int64_t end[kMaxCopies];  // running element counts: part k covers [end[k-1], end[k])
  int count;
};

template <typename T>
__global__ void scaled_copy_multi_kernel(ScaledCopyBatch<T> b) {
  const int64_t total = b.end[b.count - 1];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int k = 0;
    while (i >= b.end[k]) ++k;
    const int64_t j = i - (k ? b.end[k - 1] : 0);
    b.dst[k][j] = !b.src[k] ? T(0) : b.scale[k] == T(1) ? b.src[k][j] : b.scale[k] * b.src[k][j];
  }
}

__global__ void probe_kernel_impl() {}

// Uploads larger than this go straight from the caller's buffer and wait for the copy.
constexpr std::size_t kStagingLimit = std::size_t(64) << 20;

}  // namespace

// ---------------------------------------------------------------------------------------------
// the backend's entries

void CudaBackend::copy(void* dst, const void* src, std::size_t bytes) {
  if (!bytes || dst == src) return;
  DeviceGuard guard(device_);
  KILN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::scaled_copy_multi(DType dtype, const ScaledCopy* copies, int count) {
  DeviceGuard guard(device_);
  with_float_type(dtype, "scaled_copy_multi", [&](auto tag) {
    using T = decltype(tag);
    for (int first = 0; first < count;) {
      ScaledCopyBatch<T> b{};
      int64_t total = 0;
      for (; first < count && b.count < kMaxCopies; ++first) {
        const ScaledCopy& c = copies[first];
        if (c.n <= 0) continue;
        b.src[b.count] = static_cast<const T*>(c.src);
        b.dst[b.count] = static_cast<T*>(c.dst);
        b.scale[b.count] = static_cast<T>(c.scale);
        total += c.n;
        b.end[b.count++] = total;
      }
      if (!b.count) continue;
      scaled_copy_multi_kernel<<<grid_for(total), kBlock, 0, stream_>>>(b);
      KILN_LAUNCH_CHECK("scaled_copy_multi_kernel");
    }
  });
}

void CudaBackend::copy_to_host(void* host_dst, const void* src, std::size_t bytes) {
  if (!bytes) return;
  DeviceGuard guard(device_);
  KILN_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  KILN_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy_from_host(void* dst, const void* host_src, std::size_t bytes) {
  if (!bytes) return;
  DeviceGuard guard(device_);
  if (bytes > kStagingLimit) {
    KILN_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
    KILN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return;
  }
  std::lock_guard lock(staging_mutex_);
  KILN_CUDA_CHECK(cudaEventSynchronize(staging_done_));  // the previous upload has left the buffer
  if (staging_bytes_ < bytes) {
    if (staging_) KILN_CUDA_CHECK(cudaFreeHost(staging_));
    staging_ = nullptr;
    std::size_t size = std::size_t(1) << 20;
    while (size < bytes) size *= 2;
    KILN_CUDA_CHECK(cudaMallocHost(&staging_, size));
    staging_bytes_ = size;
  }
  std::memcpy(staging_, host_src, bytes);
  KILN_CUDA_CHECK(cudaMemcpyAsync(dst, staging_, bytes, cudaMemcpyHostToDevice, stream_));
  KILN_CUDA_CHECK(cudaEventRecord(staging_done_, stream_));
}

void CudaBackend::fill(DType dtype, void* dst, int64_t n, double value) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  kernels::with_cuda_type(dtype, [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<<<grid_for(n), kBlock, 0, stream_>>>(static_cast<T*>(dst), n, kernels::convert_element<T>(value));
  });
  KILN_LAUNCH_CHECK("fill_kernel");
}

void CudaBackend::cast(DType from, const void* src, DType to, void* dst, int64_t n) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  kernels::with_cuda_type(from, [&](auto f) {
    kernels::with_cuda_type(to, [&](auto t) {
      cast_kernel<<<grid_for(n), kBlock, 0, stream_>>>(static_cast<const decltype(f)*>(src),
                                                       static_cast<decltype(t)*>(dst), n);
    });
  });
  KILN_LAUNCH_CHECK("cast_kernel");
}

void CudaBackend::gather_rows(const void* src, const int32_t* idx, void* dst, int64_t n_idx, std::size_t row_bytes) {
  DeviceGuard guard(device_);
  if (n_idx <= 0 || row_bytes == 0) return;
  const auto aligned = [&](std::size_t a) {
    return row_bytes % a == 0 && reinterpret_cast<uintptr_t>(src) % a == 0 && reinterpret_cast<uintptr_t>(dst) % a == 0;
  };
  auto launch = [&](auto word) {
    using Word = decltype(word);
    const int64_t words = static_cast<int64_t>(row_bytes / sizeof(Word));
    gather_rows_kernel<<<grid_for(n_idx * words), kBlock, 0, stream_>>>(static_cast<const Word*>(src), idx,
                                                                        static_cast<Word*>(dst), n_idx, words);
  };
  if (aligned(16))
    launch(int4{});
  else if (aligned(4))
    launch(int32_t{});
  else
    launch(uint8_t{});
  KILN_LAUNCH_CHECK("gather_rows_kernel");
}

void CudaBackend::select_batch(const int32_t* perm, const int64_t* index, int32_t* idx, int64_t n) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  select_batch_kernel<<<grid_for(n), kBlock, 0, stream_>>>(perm, index, idx, n);
  KILN_LAUNCH_CHECK("select_batch_kernel");
}

void CudaBackend::advance_counter(int64_t* counter) {
  DeviceGuard guard(device_);
  advance_counter_kernel<<<1, 1, 0, stream_>>>(counter);
  KILN_LAUNCH_CHECK("advance_counter_kernel");
}

// ---------------------------------------------------------------------------------------------
// the convolution's helpers (data movement: every floating dtype, 16-bit ones included)

namespace kernels {

void transpose(DType dtype, const void* in, void* out, int64_t rows, int64_t cols, cudaStream_t s) {
  transpose_batch(dtype, in, out, 1, rows, cols, s);
}

void transpose_batch(DType dtype, const void* in, void* out, int64_t batch, int64_t rows, int64_t cols,
                     cudaStream_t s) {
  if (batch <= 0 || rows <= 0 || cols <= 0) return;
  with_cuda_compute_type(dtype, "transpose", [&](auto tag) {
    using T = decltype(tag);
    const int64_t row_tiles = (rows + 31) / 32;
    const dim3 grid(static_cast<unsigned>((cols + 31) / 32),
                    static_cast<unsigned>(row_tiles < 65535 ? row_tiles : 65535),
                    static_cast<unsigned>(batch < 65535 ? batch : 65535));
    transpose_kernel<<<grid, dim3(32, 8), 0, s>>>(static_cast<const T*>(in), static_cast<T*>(out), batch, rows, cols);
  });
  KILN_LAUNCH_CHECK("transpose_kernel");
}

void pad_nhwc(DType dtype, const void* x, void* xp, int64_t N, int64_t H, int64_t W, int64_t C, int64_t HP, int64_t WP,
              int64_t top, int64_t left, cudaStream_t s) {
  const int64_t total = N * HP * WP * C;
  if (total <= 0) return;
  with_cuda_compute_type(dtype, "pad", [&](auto tag) {
    using T = decltype(tag);
    pad_kernel<<<grid_for(total), kBlock, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(xp), N, H, W, C, HP, WP,
                                                  top, left);
  });
  KILN_LAUNCH_CHECK("pad_kernel");
}

void crop_nhwc(DType dtype, const void* dxp, void* dx, int64_t N, int64_t H, int64_t W, int64_t C, int64_t HP,
               int64_t WP, int64_t top, int64_t left, cudaStream_t s) {
  const int64_t total = N * H * W * C;
  if (total <= 0) return;
  with_cuda_compute_type(dtype, "crop", [&](auto tag) {
    using T = decltype(tag);
    crop_kernel<<<grid_for(total), kBlock, 0, s>>>(static_cast<const T*>(dxp), static_cast<T*>(dx), N, H, W, C, HP, WP,
                                                   top, left);
  });
  KILN_LAUNCH_CHECK("crop_kernel");
}

const void* probe_kernel() { return reinterpret_cast<const void*>(&probe_kernel_impl); }

}  // namespace kernels

}  // namespace kiln::backend
