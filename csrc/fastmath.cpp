// The vectorised activation loops, each compiled for AVX2+FMA (x86-64-v3) and for baseline
// x86-64; the dynamic loader picks one per machine. Built with -fno-trapping-math (changes no
// result) so the compiler may evaluate both sides of the selects in vector lanes.
#include "fastmath.hpp"

namespace pynn::fast {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PYNN_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PYNN_CLONES
#endif

// Every float sigmoid/tanh in the core goes through these (strided runs too), so whichever
// clone the machine picks, all paths round alike and fused and unfused kernels agree bitwise.
PYNN_CLONES void sigmoid_n(const float* in, idx is, float* out, idx os, idx n) {
    if (is == 1 && os == 1) {
        for (idx k = 0; k < n; ++k) out[k] = sigmoid(in[k]);
    } else {
        for (idx k = 0; k < n; ++k) out[k * os] = sigmoid(in[k * is]);
    }
}

PYNN_CLONES void tanh_n(const float* in, idx is, float* out, idx os, idx n) {
    if (is == 1 && os == 1) {
        for (idx k = 0; k < n; ++k) out[k] = tanh(in[k]);
    } else {
        for (idx k = 0; k < n; ++k) out[k * os] = tanh(in[k * is]);
    }
}

PYNN_CLONES void bias_sigmoid_n(float* z, const float* b, idx bs, float* a, idx n) {
    if (bs == 1) {
        for (idx i = 0; i < n; ++i) { float v = z[i] + b[i]; z[i] = v; a[i] = sigmoid(v); }
    } else {
        for (idx i = 0; i < n; ++i) { float v = z[i] + b[i * bs]; z[i] = v; a[i] = sigmoid(v); }
    }
}

PYNN_CLONES void bias_tanh_n(float* z, const float* b, idx bs, float* a, idx n) {
    if (bs == 1) {
        for (idx i = 0; i < n; ++i) { float v = z[i] + b[i]; z[i] = v; a[i] = tanh(v); }
    } else {
        for (idx i = 0; i < n; ++i) { float v = z[i] + b[i * bs]; z[i] = v; a[i] = tanh(v); }
    }
}

PYNN_CLONES void exp_shifted_n(const float* in, idx is, float shift, float* out, idx os, idx n) {
    if (is == 1 && os == 1) {
        for (idx k = 0; k < n; ++k) out[k] = exp_neg(in[k] - shift);
    } else {
        for (idx k = 0; k < n; ++k) out[k * os] = exp_neg(in[k * is] - shift);
    }
}

}  // namespace pynn::fast
