// Dropout masks from a counter-based generator, so every backend draws the same mask without
// sharing state: element k of layer `layer`'s mask at training step `step` is a pure function
// of (seed, step, layer, k). The hash is splitmix64's finaliser; the same lines are in
// backends/reference.py and backends/numba_kernels.py.
#include "kernels.hpp"

namespace pynn {

static constexpr uint64_t GOLDEN = 0x9E3779B97F4A7C15ull;

uint64_t splitmix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t dropout_key(uint64_t seed, uint64_t step, uint64_t layer) {
    return splitmix64(splitmix64(splitmix64(seed) + step) + layer);
}

// M (h, d): 0 where u_k < p, else 1 / (1 - p) (inverted dropout), u_k = the top 53 bits of
// splitmix64(key + (k + 1) * GOLDEN) / 2^53, k = i + j h (column-major index).
template <class T>
void dropout_mask(uint64_t seed, uint64_t step, uint64_t layer, double p, Mat<T> M) {
    const uint64_t key = dropout_key(seed, step, layer);
    const T scale = T(1) / T(1.0 - p);  // as torch: 1 / (1 - p) in the data's dtype
    const idx h = M.rows;
    for (idx j = 0; j < M.cols; ++j)
        for (idx i = 0; i < h; ++i) {
            uint64_t k = uint64_t(i + j * h);
            double u = double(splitmix64(key + (k + 1) * GOLDEN) >> 11) * 0x1.0p-53;
            M(i, j) = u < p ? T(0) : scale;
        }
}

template void dropout_mask<float>(uint64_t, uint64_t, uint64_t, double, Mat<float>);
template void dropout_mask<double>(uint64_t, uint64_t, uint64_t, double, Mat<double>);

}  // namespace pynn
