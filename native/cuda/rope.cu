// Rotary position embedding, rotate-half (NeoX / Hugging Face) layout: dimension i < hd/2 is
// paired with i + hd/2 and rotated by angle pos * theta^(-2i/hd). The backward is the inverse
// rotation (angle negated). Angles are computed in double, as in native/cpu/rope.cpp: pos * freq
// reaches thousands of radians, where float sin/cos (and --use_fast_math's __sinf) lose the phase.
#include "common.cuh"

namespace {

// inp (N, nh, hd), pos (N) -> out (N, nh, hd); sign = +1 forward, -1 backward; out may alias inp
__global__ void rope_kernel(float* out, const float* inp, const int32_t* pos, int N, int nh, int hd, double theta, float sign) {
  const int half = hd / 2;
  const int64_t total = (int64_t)N * nh * half;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    const int i = e % half;
    const int64_t row = e / half;  // n * nh + h
    const int n = row / nh;
    const double angle = pos[n] * pow(theta, -2.0 * i / hd);
    double s, c;
    sincos(angle, &s, &c);
    const float cs = (float)c, sn = sign * (float)s;
    const int64_t base = row * hd;
    const float x1 = inp[base + i], x2 = inp[base + i + half];
    out[base + i] = x1 * cs - x2 * sn;
    out[base + i + half] = x2 * cs + x1 * sn;
  }
}

int rope(float* out, const float* inp, const int32_t* pos, int N, int nh, int hd, float theta, float sign, char* err, size_t errlen) {
  REQUIRE(hd % 2 == 0, "head dim %d must be even", hd);
  REQUIRE(theta > 0.0f, "theta must be > 0, got %g", theta);
  const int64_t total = (int64_t)N * nh * (hd / 2);
  if (total <= 0) return 0;
  rope_kernel<<<anvil_cuda::grid_for(total, 256), 256>>>(out, inp, pos, N, nh, hd, (double)theta, sign);
  CHECK_LAUNCH();
  return 0;
}

}  // namespace

extern "C" {

int anvil_cuda_rope_forward(float* out, const float* inp, const int32_t* pos, int N, int nh, int hd, float theta, char* err, size_t errlen) {
  return rope(out, inp, pos, N, nh, hd, theta, 1.0f, err, errlen);
}

int anvil_cuda_rope_backward(float* dinp, const float* dout, const int32_t* pos, int N, int nh, int hd, float theta, char* err, size_t errlen) {
  return rope(dinp, dout, pos, N, nh, hd, theta, -1.0f, err, errlen);
}

}  // extern "C"
