// Strided 2-D views over NumPy buffers, and the loops every elementwise kernel shares.
// A batch is (features, examples): rows are features, columns are examples. Our own
// workspaces are F-ordered (each example a contiguous column); user arrays may be either.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pynn {

using idx = std::ptrdiff_t;

// Element (i, j) lives at p[i*rs + j*cs]; strides are in elements, never negative.
template <class T>
struct Mat {
    T* p;
    idx rows, cols, rs, cs;

    T& operator()(idx i, idx j) const { return p[i * rs + j * cs]; }
    Mat t() const { return {p, cols, rows, cs, rs}; }  // the transpose, as a view
    Mat col_range(idx c0, idx c1) const { return {p + c0 * cs, rows, c1 - c0, rs, cs}; }  // columns [c0, c1)
    idx size() const { return rows * cols; }
    operator Mat<const T>() const { return {p, rows, cols, rs, cs}; }
};
template <class T>
using CMat = Mat<const T>;

// Row-major with leading dimension ld (unit column stride), as BLAS wants it.
template <class T>
inline bool row_major(const Mat<T>& a) {
    return (a.cols <= 1 || a.cs == 1) && (a.rows <= 1 || a.rs >= a.cols);
}
template <class T>
inline bool col_major(const Mat<T>& a) { return row_major(a.t()); }
template <class T>
inline idx row_ld(const Mat<T>& a) { return a.rows <= 1 ? (a.cols > 1 ? a.cols : 1) : a.rs; }

// Fully contiguous in C order / F order (size-1 axes don't care about their stride).
template <class T>
inline bool c_contig(const Mat<T>& a) {
    return (a.cols <= 1 || a.cs == 1) && (a.rows <= 1 || a.rs == a.cols);
}
template <class T>
inline bool f_contig(const Mat<T>& a) { return c_contig(a.t()); }

// Number of elements if every view is contiguous in one shared order (so they can be
// walked as flat vectors, which the compiler vectorises); 0 otherwise.
template <class T, class... M>
inline idx flat_size(const Mat<T>& first, const M&... rest) {
    bool c = c_contig(first) && (c_contig(rest) && ...);
    bool f = f_contig(first) && (f_contig(rest) && ...);
    return (c || f) ? first.size() : 0;
}

// Visit every (i, j), the inner loop running along the axis where `out` is contiguous.
template <class T, class F>
inline void for_each_ij(const Mat<T>& out, F&& f) {
    if (out.rs == 1 && out.rows > 1) {
        for (idx j = 0; j < out.cols; ++j)
            for (idx i = 0; i < out.rows; ++i) f(i, j);
    } else {
        for (idx i = 0; i < out.rows; ++i)
            for (idx j = 0; j < out.cols; ++j) f(i, j);
    }
}

// out = f(x), elementwise. out may be x (in place).
template <class T, class F>
inline void map1(CMat<T> x, Mat<T> out, F f) {
    if (idx n = flat_size(x, CMat<T>(out))) {
        const T* xp = x.p;
        T* op = out.p;
        for (idx k = 0; k < n; ++k) op[k] = f(xp[k]);
        return;
    }
    for_each_ij(out, [&](idx i, idx j) { out(i, j) = f(x(i, j)); });
}

// out = f(x, y), elementwise. out may be x or y (in place).
template <class T, class F>
inline void map2(CMat<T> x, CMat<T> y, Mat<T> out, F f) {
    if (idx n = flat_size(x, y, CMat<T>(out))) {
        const T *xp = x.p, *yp = y.p;
        T* op = out.p;
        for (idx k = 0; k < n; ++k) op[k] = f(xp[k], yp[k]);
        return;
    }
    for_each_ij(out, [&](idx i, idx j) { out(i, j) = f(x(i, j), y(i, j)); });
}

// Sum of f(x, y) over all elements, accumulated in double.
template <class T, class F>
inline double sum2(CMat<T> x, CMat<T> y, F f) {
    double s = 0;
    if (idx n = flat_size(x, y)) {
        for (idx k = 0; k < n; ++k) s += f(x.p[k], y.p[k]);
        return s;
    }
    for_each_ij(x, [&](idx i, idx j) { s += f(x(i, j), y(i, j)); });
    return s;
}

}  // namespace pynn
