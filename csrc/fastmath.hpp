// float32 exp, sigmoid and tanh as branch-free polynomials (Cephes' expf and tanhf), so loops
// over them vectorise; fastmath.cpp compiles those loops once per CPU level (target_clones)
// and the loader picks the best at run time, so one portable wheel is fast on AVX2 machines.
// Accuracy: within a few ulp of libm, which the tests compare against through the reference.
#pragma once
#include <cstdint>
#include <cstring>

#include "view.hpp"

namespace pynn::fast {

// exp(x) for x <= 0 (all that sigmoid and tanh need); 0 below the float range.
inline float exp_neg(float x) {
    const float lo = -87.33654f;  // exp(lo) = 2^-126, the smallest normal float
    float xc = x < lo ? lo : x;
    float n = float(int32_t(xc * 1.44269504088896341f - 0.5f));  // round(x / ln 2), x <= 0
    float r = xc - n * 0.693359375f - n * -2.12194440e-4f;        // Cody-Waite: r = x - n ln 2
    float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    int32_t bits = (int32_t(n) + 127) << 23;  // 2^n
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    // underflow gives 0 (a multiply, not a select: GCC won't if-convert that select and the
    // loop would not vectorise); NaN stays NaN since NaN * 0 is NaN
    return p * scale * float(x >= lo);
}

// 1 / (1 + exp(-z)) in the form that never overflows, as the reference writes it.
inline float sigmoid(float z) {
    float e = exp_neg(z < 0 ? z : -z);
    float num = z >= 0 ? 1.0f : e;
    return num / (1.0f + e);
}

// tanh: an odd polynomial near 0, 1 - 2 / (exp(2|z|) + 1) = (1 - e) / (1 + e) beyond.
inline float tanh(float z) {
    float a = z < 0 ? -z : z;
    float s = z * z;
    float small = ((((-5.70498872745e-3f * s + 2.06390887954e-2f) * s - 5.37397155531e-2f) * s +
                    1.33314422036e-1f) * s - 3.33332819422e-1f) * s * z + z;
    float e = exp_neg(-2.0f * a);
    float big = (1.0f - e) / (1.0f + e);
    big = z < 0 ? -big : big;
    return a < 0.625f ? small : big;
}

// The vectorised loops (fastmath.cpp): out[k * os] = f(in[k * is]); and one column of a
// layer's forward, z[i] += b[i * bs], a[i] = f(z[i]) (z may be a). The inline functions above
// are for these loops only: calling them elsewhere could round differently (FMA or not).
void sigmoid_n(const float* in, idx is, float* out, idx os, idx n);
void tanh_n(const float* in, idx is, float* out, idx os, idx n);
void bias_sigmoid_n(float* z, const float* b, idx bs, float* a, idx n);
void bias_tanh_n(float* z, const float* b, idx bs, float* a, idx n);
// out[k * os] = exp(in[k * is] - shift) for in <= shift (softmax's shifted exponentials).
void exp_shifted_n(const float* in, idx is, float shift, float* out, idx os, idx n);

}  // namespace pynn::fast
