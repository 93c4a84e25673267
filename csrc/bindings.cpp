// pynn._core: converts NumPy arrays to views, makes O(1) checks, releases the GIL, calls.
// No logic lives here. The checks exist because _core is importable on its own and must
// never crash: wrong ndim/shape, a read-only output, a stride BLAS can't take, or an output
// that overlaps an input all raise ValueError. Arrays of the wrong dtype are never
// converted (noconvert): a float32 call can't silently land in a float64 temporary.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <string>

#include "blas.hpp"
#include "kernels.hpp"
#include "model.hpp"
#include "parallel.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pynn;

namespace {

template <class T>
using Arr = py::array_t<T, 0>;

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument(msg); }

std::string shape_str(idx r, idx c) { return "(" + std::to_string(r) + ", " + std::to_string(c) + ")"; }

// What keeps a 2-D array from being read in place as a Mat<T> (null if nothing): BLAS and
// the kernels need aligned elements, positive strides and one unit stride.
template <class T>
const char* layout_problem(const py::array& a) {
    idx sr = a.strides(0), sc = a.strides(1);
    if (sr % idx(sizeof(T)) || sc % idx(sizeof(T)) || reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T))
        return " must be aligned to its dtype";
    Mat<T> m{nullptr, a.shape(0), a.shape(1), sr / idx(sizeof(T)), sc / idx(sizeof(T))};
    if (m.size() > 0) {
        if ((m.rows > 1 && m.rs <= 0) || (m.cols > 1 && m.cs <= 0)) return " must have positive strides";
        if (!row_major(m) && !col_major(m)) return " must be contiguous along one axis (C- or F-ordered)";
    }
    return nullptr;
}

template <class T>
Mat<T> view(const py::array& a, const char* name, bool writable) {
    if (a.ndim() != 2) fail(std::string(name) + " must be a 2-D array, got " + std::to_string(a.ndim()) + "-D");
    if (writable && !a.writeable()) fail(std::string(name) + " must be a writable array");
    if (const char* why = layout_problem<T>(a)) fail(std::string(name) + why);
    idx sr = a.strides(0), sc = a.strides(1);
    return {const_cast<T*>(static_cast<const T*>(a.data())), a.shape(0), a.shape(1), sr / idx(sizeof(T)),
            sc / idx(sizeof(T))};
}
template <class T>
CMat<T> in(const Arr<T>& a, const char* name) { return view<T>(a, name, false); }
template <class T>
Mat<T> out(Arr<T>& a, const char* name) { return view<T>(a, name, true); }

template <class T>
void expect_shape(const Mat<T>& m, idx r, idx c, const char* name) {
    if (m.rows != r || m.cols != c)
        fail(std::string(name) + " must have shape " + shape_str(r, c) + ", got " + shape_str(m.rows, m.cols));
}

// Byte ranges spanned by two views intersect.
template <class A, class B>
bool overlap(const Mat<A>& x, const Mat<B>& y) {
    if (x.size() == 0 || y.size() == 0) return false;
    auto lo = [](auto& m) { return reinterpret_cast<std::uintptr_t>(m.p); };
    auto hi = [](auto& m) {
        return reinterpret_cast<std::uintptr_t>(m.p + (m.rows - 1) * m.rs + (m.cols - 1) * m.cs + 1);
    };
    return lo(x) < hi(y) && lo(y) < hi(x);
}
template <class A, class B>
bool same(const Mat<A>& x, const Mat<B>& y) {
    return (const void*)x.p == (const void*)y.p && x.rows == y.rows && x.cols == y.cols &&
           (x.rows <= 1 || x.rs == y.rs) && (x.cols <= 1 || x.cs == y.cs);
}
template <class T>
void expect_disjoint(const Mat<T>& o, const char* oname, std::initializer_list<std::pair<CMat<T>, const char*>> ins) {
    for (auto& [m, name] : ins)
        if (overlap(o, m)) fail(std::string(oname) + " must not overlap " + name);
}
template <class T>
void expect_same_or_disjoint(const Mat<T>& o, const char* oname, const CMat<T>& m, const char* name) {
    if (!same(o, m) && overlap(o, m)) fail(std::string(oname) + " must be " + name + " itself or not overlap it");
}

template <class T>
void check_dense_backward(CMat<T> dZ, CMat<T> A_prev, CMat<T> W, Mat<T> dW, Mat<T> db, Mat<T>* dAp) {
    idx h = dZ.rows, d = dZ.cols, n = A_prev.rows;
    expect_shape(A_prev, n, d, "A_prev");
    expect_shape(W, h, n, "W");
    expect_shape(dW, h, n, "dW");
    expect_shape(db, h, 1, "db");
    expect_disjoint<T>(dW, "dW", {{dZ, "dZ"}, {A_prev, "A_prev"}, {W, "W"}, {db, "db"}});
    expect_disjoint<T>(db, "db", {{dZ, "dZ"}, {A_prev, "A_prev"}, {W, "W"}});
    if (dAp) {
        expect_shape(*dAp, n, d, "dA_prev");
        expect_disjoint<T>(*dAp, "dA_prev", {{dZ, "dZ"}, {A_prev, "A_prev"}, {W, "W"}, {dW, "dW"}, {db, "db"}});
    }
}

template <class T>
std::optional<Mat<T>> opt_out(std::optional<Arr<T>>& a, const char* name) {
    if (!a) return std::nullopt;
    return out<T>(*a, name);
}

template <class T>
T* flat(Arr<T>& a, const char* name, idx n, bool writable) {
    if (a.ndim() != 1) fail(std::string(name) + " must be a 1-D array");
    if (a.shape(0) != n) fail(std::string(name) + " must have " + std::to_string(n) + " elements, got " + std::to_string(a.shape(0)));
    if (n > 1 && a.strides(0) != idx(sizeof(T))) fail(std::string(name) + " must be contiguous");
    if (reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T)) fail(std::string(name) + " must be aligned to its dtype");
    if (writable && !a.writeable()) fail(std::string(name) + " must be a writable array");
    return const_cast<T*>(static_cast<const T*>(a.data()));
}

const char* ACTS[] = {"sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "softplus", "exp", "linear", "softmax"};
const char* LOSSES[] = {"mse", "bce", "cross_entropy", "mae", "huber", "poisson"};  // in enum Loss's order

template <class T>
void bind(py::module_& m) {
    m.def("dense_forward", [](const Arr<T>& W_, const Arr<T>& A_, const Arr<T>& b_, Arr<T>& Z_) {
        auto W = in(W_, "W"); auto A = in(A_, "A_prev"); auto b = in(b_, "b"); auto Z = out(Z_, "Z");
        expect_shape(A, W.cols, A.cols, "A_prev");
        expect_shape(b, W.rows, 1, "b");
        expect_shape(Z, W.rows, A.cols, "Z");
        expect_disjoint<T>(Z, "Z", {{W, "W"}, {A, "A_prev"}, {b, "b"}});
        py::gil_scoped_release release;
        dense_forward<T>(W, A, b, Z);
    }, "Z = W A_prev + b", "W"_a.noconvert(), "A_prev"_a.noconvert(), "b"_a.noconvert(), "Z"_a.noconvert());

    m.def("dense_backward", [](const Arr<T>& dZ_, const Arr<T>& A_, const Arr<T>& W_, Arr<T>& dW_, Arr<T>& db_,
                               std::optional<Arr<T>> dAp_) {
        auto dZ = in(dZ_, "dZ"); auto A = in(A_, "A_prev"); auto W = in(W_, "W");
        auto dW = out(dW_, "dW"); auto db = out(db_, "db"); auto dAp = opt_out(dAp_, "dA_prev");
        check_dense_backward<T>(dZ, A, W, dW, db, dAp ? &*dAp : nullptr);
        py::gil_scoped_release release;
        dense_backward<T>(dZ, A, W, dW, db, dAp ? &*dAp : nullptr);
    }, "dW = dZ A_prevᵀ, db = dZ·1, dA_prev = Wᵀ dZ (skipped when dA_prev is None)",
       "dZ"_a.noconvert(), "A_prev"_a.noconvert(), "W"_a.noconvert(), "dW"_a.noconvert(), "db"_a.noconvert(),
       "dA_prev"_a.noconvert().none(true));

    for (const char* name : ACTS) {
        Act act = parse_act(name);
        m.def((std::string(name) + "_forward").c_str(), [act](const Arr<T>& Z_, Arr<T>& A_) {
            auto Z = in(Z_, "Z"); auto A = out(A_, "A");
            expect_shape(A, Z.rows, Z.cols, "A");
            expect_same_or_disjoint<T>(A, "A", Z, "Z");
            py::gil_scoped_release release;
            act_forward<T>(act, Z, A);
        }, "A = act(Z); A may be Z", "Z"_a.noconvert(), "A"_a.noconvert());
        m.def((std::string(name) + "_backward").c_str(), [act](const Arr<T>& dA_, const Arr<T>& A_, Arr<T>& dZ_) {
            auto dA = in(dA_, "dA"); auto A = in(A_, "A"); auto dZ = out(dZ_, "dZ");
            expect_shape(A, dA.rows, dA.cols, "A");
            expect_shape(dZ, dA.rows, dA.cols, "dZ");
            expect_same_or_disjoint<T>(dZ, "dZ", dA, "dA");
            expect_disjoint<T>(dZ, "dZ", {{A, "A"}});
            py::gil_scoped_release release;
            act_backward<T>(act, dA, A, dZ);
        }, backward_from_z(act) ? "dZ = dA * act'(Z), from Z; dZ may be dA" : "dZ = dA * act'(Z), from A = act(Z); dZ may be dA",
           "dA"_a.noconvert(), py::arg(backward_from_z(act) ? "Z" : "A").noconvert(), "dZ"_a.noconvert());
    }

    auto pair_in = [](const Arr<T>& X_, const Arr<T>& Y_, const char* xn) {
        auto X = in(X_, xn); auto Y = in(Y_, "Y");
        expect_shape(Y, X.rows, X.cols, "Y");
        if (X.cols == 0) fail("the batch must hold at least one example");
        return std::make_pair(X, Y);
    };
    for (int k = 0; k < int(std::size(LOSSES)); ++k) {
        Loss loss = Loss(k);
        std::string name = LOSSES[k];
        if (loss == Loss::huber) continue;  // takes its delta: below
        m.def((name + "_forward").c_str(), [loss, pair_in](const Arr<T>& Yh_, const Arr<T>& Y_) {
            auto [Yh, Y] = pair_in(Yh_, Y_, "Yhat");
            py::gil_scoped_release release;
            return loss_forward<T>(loss, Yh, Y);
        }, "J = (1/d) sum_i L(yhat_i, y_i)", "Yhat"_a.noconvert(), "Y"_a.noconvert());
        m.def((name + "_backward").c_str(), [loss, pair_in](const Arr<T>& Yh_, const Arr<T>& Y_, Arr<T>& dYh_) {
            auto [Yh, Y] = pair_in(Yh_, Y_, "Yhat");
            auto dYh = out(dYh_, "dYhat");
            expect_shape(dYh, Yh.rows, Yh.cols, "dYhat");
            expect_disjoint<T>(dYh, "dYhat", {{Yh, "Yhat"}, {Y, "Y"}});
            py::gil_scoped_release release;
            loss_backward<T>(loss, Yh, Y, dYh);
        }, "dYhat = dJ/dYhat", "Yhat"_a.noconvert(), "Y"_a.noconvert(), "dYhat"_a.noconvert());
    }
    m.def("huber_forward", [pair_in](const Arr<T>& Yh_, const Arr<T>& Y_, double delta) {
        auto [Yh, Y] = pair_in(Yh_, Y_, "Yhat");
        py::gil_scoped_release release;
        return loss_forward<T>(Loss::huber, Yh, Y, delta);
    }, "J = (1/d) sum_i L(yhat_i, y_i), Huber with threshold delta", "Yhat"_a.noconvert(), "Y"_a.noconvert(),
       "delta"_a = 1.0);
    m.def("huber_backward", [pair_in](const Arr<T>& Yh_, const Arr<T>& Y_, Arr<T>& dYh_, double delta) {
        auto [Yh, Y] = pair_in(Yh_, Y_, "Yhat");
        auto dYh = out(dYh_, "dYhat");
        expect_shape(dYh, Yh.rows, Yh.cols, "dYhat");
        expect_disjoint<T>(dYh, "dYhat", {{Yh, "Yhat"}, {Y, "Y"}});
        py::gil_scoped_release release;
        loss_backward<T>(Loss::huber, Yh, Y, dYh, delta);
    }, "dYhat = dJ/dYhat, Huber with threshold delta", "Yhat"_a.noconvert(), "Y"_a.noconvert(),
       "dYhat"_a.noconvert(), "delta"_a = 1.0);
    m.def("poisson_logits_forward", [pair_in](const Arr<T>& Z_, const Arr<T>& Y_) {
        auto [Z, Y] = pair_in(Z_, Y_, "Z");
        py::gil_scoped_release release;
        return poisson_logits_forward<T>(Z, Y);
    }, "poisson of exp(Z), computed from the log-rate Z", "Z"_a.noconvert(), "Y"_a.noconvert());
    m.def("bce_logits_forward", [pair_in](const Arr<T>& Z_, const Arr<T>& Y_) {
        auto [Z, Y] = pair_in(Z_, Y_, "Z");
        py::gil_scoped_release release;
        return bce_logits_forward<T>(Z, Y);
    }, "bce of sigmoid(Z), computed from the logits Z", "Z"_a.noconvert(), "Y"_a.noconvert());
    m.def("cross_entropy_logits_forward", [pair_in](const Arr<T>& Z_, const Arr<T>& Y_) {
        auto [Z, Y] = pair_in(Z_, Y_, "Z");
        py::gil_scoped_release release;
        return cross_entropy_logits_forward<T>(Z, Y);
    }, "cross-entropy of softmax(Z), computed from the logits Z", "Z"_a.noconvert(), "Y"_a.noconvert());
    m.def("output_backward", [pair_in](const Arr<T>& Yh_, const Arr<T>& Y_, Arr<T>& dZ_) {
        auto [Yh, Y] = pair_in(Yh_, Y_, "Yhat");
        auto dZ = out(dZ_, "dZ");
        expect_shape(dZ, Yh.rows, Yh.cols, "dZ");
        expect_disjoint<T>(dZ, "dZ", {{Yh, "Yhat"}, {Y, "Y"}});
        py::gil_scoped_release release;
        output_backward<T>(Yh, Y, dZ);
    }, "dZ = (Yhat - Y) / d", "Yhat"_a.noconvert(), "Y"_a.noconvert(), "dZ"_a.noconvert());

    m.def("dropout_mask", [](uint64_t seed, uint64_t step, uint64_t layer, double p, Arr<T>& M_) {
        auto M = out(M_, "M");
        if (!(p >= 0 && p < 1)) fail("p must be in [0, 1)");
        py::gil_scoped_release release;
        dropout_mask<T>(seed, step, layer, p, M);
    }, "M = inverted-dropout mask for (seed, step, layer): 0 with probability p, else 1/(1-p)",
       "seed"_a, "step"_a, "layer"_a, "p"_a, "M"_a.noconvert());
    m.def("layer_forward", [](const Arr<T>& W_, const Arr<T>& A_, const Arr<T>& b_, const std::string& act_,
                              Arr<T>& Z_, Arr<T>& Aout_) {
        Act act = parse_act(act_);
        auto W = in(W_, "W"); auto Ap = in(A_, "A_prev"); auto b = in(b_, "b");
        auto Z = out(Z_, "Z"); auto A = out(Aout_, "A");
        expect_shape(Ap, W.cols, Ap.cols, "A_prev");
        expect_shape(b, W.rows, 1, "b");
        expect_shape(Z, W.rows, Ap.cols, "Z");
        expect_shape(A, W.rows, Ap.cols, "A");
        expect_disjoint<T>(Z, "Z", {{W, "W"}, {Ap, "A_prev"}, {b, "b"}});
        expect_disjoint<T>(A, "A", {{W, "W"}, {Ap, "A_prev"}, {b, "b"}});
        expect_same_or_disjoint<T>(A, "A", Z, "Z");
        py::gil_scoped_release release;
        layer_forward<T>(W, Ap, b, act, Z, A);
    }, "Z = W A_prev + b; A = act(Z), fused; Z may be A",
       "W"_a.noconvert(), "A_prev"_a.noconvert(), "b"_a.noconvert(), "act"_a, "Z"_a.noconvert(), "A"_a.noconvert());

    m.def("layer_backward", [](const Arr<T>& dA_, const Arr<T>& A_, const std::string& act_, const Arr<T>& W_,
                               const Arr<T>& Ap_, Arr<T>& dZ_, Arr<T>& dW_, Arr<T>& db_, std::optional<Arr<T>> dAp_) {
        Act act = parse_act(act_);
        auto dA = in(dA_, "dA"); auto A = in(A_, "A"); auto W = in(W_, "W"); auto Ap = in(Ap_, "A_prev");
        auto dZ = out(dZ_, "dZ"); auto dW = out(dW_, "dW"); auto db = out(db_, "db");
        auto dAp = opt_out(dAp_, "dA_prev");
        expect_shape(A, dA.rows, dA.cols, "A");
        expect_shape(dZ, dA.rows, dA.cols, "dZ");
        expect_same_or_disjoint<T>(dZ, "dZ", dA, "dA");
        expect_disjoint<T>(dZ, "dZ", {{A, "A"}, {W, "W"}, {Ap, "A_prev"}});
        check_dense_backward<T>(dZ, Ap, W, dW, db, dAp ? &*dAp : nullptr);
        for (auto* o : {&dW, &db}) expect_disjoint<T>(*o, "dW/db", {{dA, "dA"}, {A, "A"}});
        if (dAp) expect_disjoint<T>(*dAp, "dA_prev", {{dA, "dA"}, {A, "A"}});
        py::gil_scoped_release release;
        layer_backward<T>(dA, A, act, W, Ap, dZ, dW, db, dAp ? &*dAp : nullptr);
    }, "dZ = dA * act'(A) with db in the same pass; dW = dZ A_prevᵀ; dA_prev = Wᵀ dZ",
       "dA"_a.noconvert(), "A"_a.noconvert(), "act"_a, "W"_a.noconvert(), "A_prev"_a.noconvert(),
       "dZ"_a.noconvert(), "dW"_a.noconvert(), "db"_a.noconvert(), "dA_prev"_a.noconvert().none(true));

    m.def("sgd_update", [](Arr<T>& p_, const Arr<T>& g_, Arr<T>& v_, double lr, double momentum, bool nesterov) {
        idx n = p_.ndim() == 1 ? p_.shape(0) : -1;
        T* p = flat(p_, "p", n, true);
        const T* g = flat(const_cast<Arr<T>&>(g_), "g", n, false);
        T* v = momentum != 0 ? flat(v_, "v", n, true) : nullptr;
        if (overlap(Mat<T>{p, n, 1, 1, 1}, CMat<T>{g, n, 1, 1, 1})) fail("p must not overlap g");
        py::gil_scoped_release release;
        sgd_update<T>(p, g, v, n, lr, momentum, nesterov);
    }, "SGD step on a flat buffer", "p"_a.noconvert(), "g"_a.noconvert(), "v"_a.noconvert(), "lr"_a,
       "momentum"_a, "nesterov"_a);

    m.def("adam_update", [](Arr<T>& p_, const Arr<T>& g_, Arr<T>& m_, Arr<T>& v_, long long t, double lr,
                            double beta1, double beta2, double eps, double weight_decay) {
        idx n = p_.ndim() == 1 ? p_.shape(0) : -1;
        T* p = flat(p_, "p", n, true);
        const T* g = flat(const_cast<Arr<T>&>(g_), "g", n, false);
        T* mm = flat(m_, "m", n, true);
        T* v = flat(v_, "v", n, true);
        if (t < 1) fail("t must be >= 1");
        py::gil_scoped_release release;
        adam_update<T>(p, g, mm, v, n, t, lr, beta1, beta2, eps, weight_decay);
    }, "Adam/AdamW step on a flat buffer", "p"_a.noconvert(), "g"_a.noconvert(), "m"_a.noconvert(),
       "v"_a.noconvert(), "t"_a, "lr"_a, "beta1"_a, "beta2"_a, "eps"_a, "weight_decay"_a);

    m.def("rmsprop_update", [](Arr<T>& p_, const Arr<T>& g_, Arr<T>& sq_, Arr<T>& ga_, Arr<T>& buf_, double lr,
                               double alpha, double eps, double weight_decay, double momentum, bool centered) {
        idx n = p_.ndim() == 1 ? p_.shape(0) : -1;
        T* p = flat(p_, "p", n, true);
        const T* g = flat(const_cast<Arr<T>&>(g_), "g", n, false);
        T* sq = flat(sq_, "square_avg", n, true);
        T* ga = centered ? flat(ga_, "grad_avg", n, true) : nullptr;
        T* buf = momentum > 0 ? flat(buf_, "buf", n, true) : nullptr;
        if (overlap(Mat<T>{p, n, 1, 1, 1}, CMat<T>{g, n, 1, 1, 1})) fail("p must not overlap g");
        py::gil_scoped_release release;
        rmsprop_update<T>(p, g, sq, ga, buf, n, lr, alpha, eps, weight_decay, momentum, centered);
    }, "RMSprop step on a flat buffer", "p"_a.noconvert(), "g"_a.noconvert(), "square_avg"_a.noconvert(),
       "grad_avg"_a.noconvert(), "buf"_a.noconvert(), "lr"_a, "alpha"_a, "eps"_a, "weight_decay"_a, "momentum"_a,
       "centered"_a);

    m.def("rprop_update", [](Arr<T>& p_, const Arr<T>& g_, Arr<T>& prev_, Arr<T>& step_, double eta_minus,
                             double eta_plus, double step_min, double step_max) {
        idx n = p_.ndim() == 1 ? p_.shape(0) : -1;
        T* p = flat(p_, "p", n, true);
        const T* g = flat(const_cast<Arr<T>&>(g_), "g", n, false);
        T* prev = flat(prev_, "prev", n, true);
        T* step = flat(step_, "step_size", n, true);
        if (overlap(Mat<T>{p, n, 1, 1, 1}, CMat<T>{g, n, 1, 1, 1})) fail("p must not overlap g");
        py::gil_scoped_release release;
        rprop_update<T>(p, g, prev, step, n, eta_minus, eta_plus, step_min, step_max);
    }, "iRprop- step on a flat buffer", "p"_a.noconvert(), "g"_a.noconvert(), "prev"_a.noconvert(),
       "step_size"_a.noconvert(), "eta_minus"_a, "eta_plus"_a, "step_min"_a, "step_max"_a);
}


// ---------------------------------------------------------------- the fused model
// Raised when an argument is not one the fused path takes as it is; network.py then runs its
// full validation, which either raises the user-facing error or takes the general path.
[[noreturn]] void reject(const std::string& msg) { throw std::domain_error(msg); }

Loss loss_code(int code) {
    if (code < 0 || code > int(Loss::poisson))
        fail("loss must be 0 (mse), 1 (bce), 2 (cross_entropy), 3 (mae), 4 (huber) or 5 (poisson), got " +
             std::to_string(code));
    return Loss(code);
}

template <class T>
struct PyModel {
    py::array params, grads;  // the network's flat buffers, kept alive while the model lives
    Model<T> model;
    OptState<T> opt;
    py::list opt_arrays;      // keeps the optimizer's state arrays alive
    py::object drop_step;     // keeps the dropout step counter alive

    PyModel(Arr<T> p, Arr<T> g, std::vector<idx> sizes, std::vector<Act> acts)
        : params(p), grads(g), model(p.mutable_data(), g.mutable_data(), std::move(sizes), std::move(acts)) {}
};

// The array's NumPy type number, read from the object itself (no new references), or -1 when
// its bytes are not in the machine's order: the type number of '>f8' is that of '<f8'.
int type_num(const py::array& a) {
    auto* d = py::detail::array_descriptor_proxy(py::detail::array_proxy(a.ptr())->descr);
    const uint16_t probe = 1;
    const char foreign = *reinterpret_cast<const char*>(&probe) == 1 ? '>' : '<';  // the other endianness
    return d->byteorder == foreign ? -1 : d->type_num;
}
template <class T>
constexpr int npy_type = py::detail::npy_format_descriptor<T>::value;

// A user's batch, as the fused path takes it. Anything else — another dtype or shape, or a
// layout the kernels can't read in place (negative strides, no unit stride, misaligned) — is
// rejected as InvalidInput: network.py then validates it in full and copies it if it must.
template <class T>
CMat<T> batch_view(const py::array& a, idx rows, const char* name) {
    if (type_num(a) != npy_type<T> || a.ndim() != 2 || a.shape(0) != rows)
        reject(std::string(name) + " is not a matching 2-D array");
    if (const char* why = layout_problem<T>(a)) reject(std::string(name) + why);
    return view<T>(a, name, false);
}

template <class T>
Target<T> target_view(const py::array& Y, idx m, idx d, Loss loss) {
    Target<T> t;
    if (Y.ndim() == 1 && loss == Loss::cross_entropy && m > 1 && type_num(Y) == npy_type<int64_t>) {
        if (Y.shape(0) != d || Y.strides(0) % 8 || reinterpret_cast<std::uintptr_t>(Y.data()) % alignof(int64_t))
            reject("Y indices do not match");
        t.index = static_cast<const int64_t*>(Y.data());
        t.index_stride = Y.strides(0) / 8;
        return t;
    }
    if (Y.ndim() != 2 || type_num(Y) != npy_type<T> || Y.shape(0) != m || Y.shape(1) != d)
        reject("Y does not match");
    if (const char* why = layout_problem<T>(Y)) reject(std::string("Y") + why);
    t.dense = view<T>(Y, "Y", false);
    return t;
}

// Class indices index the one-hot buffer: out of range they would write outside it.
template <class T>
bool indices_ok(const Target<T>& Y, idx d, idx m) {
    for (idx j = 0; j < d; ++j) {
        int64_t c = Y.index[j * Y.index_stride];
        if (c < 0 || c >= m) return false;
    }
    return true;
}

// The values checks that _validate.py makes: finite inputs, targets in range, and for a
// softmax output with cross-entropy, target columns that sum to 1 (within sum_tolerance).
template <class T>
bool values_ok(CMat<T> X, const Target<T>& Y, Loss loss, idx m, bool softmax) {
    if (!all_finite(X)) return false;
    if (Y.is_index()) return indices_ok(Y, X.cols, m);
    if (!all_finite(Y.dense)) return false;
    if (loss != Loss::bce && loss != Loss::cross_entropy && loss != Loss::poisson) return true;
    T hi = loss == Loss::poisson ? std::numeric_limits<T>::infinity() : T(1);  // counts: only >= 0
    int ok = 1;
    for_each_ij(Y.dense, [&](idx i, idx j) { T y = Y.dense(i, j); ok &= y >= T(0) && y <= hi; });
    if (ok && softmax && loss == Loss::cross_entropy) {
        const double tol = 64.0 * double(m) * double(std::numeric_limits<T>::epsilon());
        for (idx j = 0; j < Y.dense.cols && ok; ++j) {
            double s = 0;
            for (idx i = 0; i < m; ++i) s += double(Y.dense(i, j));
            ok = std::abs(s - 1.0) <= tol;
        }
    }
    return ok;
}

// Sample weights: None, or a contiguous float64 array of one weight per example (their values
// are fit's to check: the core only needs the length to read safely).
using Weights = std::optional<py::array_t<double, 0>>;
inline const double* weights_view(const Weights& s, idx d) {
    if (!s) return nullptr;
    if (s->ndim() != 1 || s->shape(0) != d || s->strides(0) != 8) fail("sample_weight must be a contiguous float64 array of one weight per example");
    return s->data();
}

template <class T>
void bind_model(py::module_& m, const char* name) {
    using PM = PyModel<T>;
    py::class_<PM>(m, name, "A network's fused forward/backward/update over its flat parameter buffer")
        .def(py::init([](Arr<T> p, Arr<T> g, std::vector<idx> sizes, std::vector<std::string> acts) {
            if (sizes.size() < 2 || acts.size() + 1 != sizes.size()) fail("sizes and acts do not agree");
            idx total = 0;
            for (size_t l = 0; l + 1 < sizes.size(); ++l) {
                if (sizes[l] < 1 || sizes[l + 1] < 1) fail("sizes must be positive");
                if (sizes[l] >= (idx(1) << 62) || sizes[l + 1] >= (idx(1) << 62)) fail("sizes are too large");
                idx layer;  // h * n + h parameters, without overflowing
                if (__builtin_mul_overflow(sizes[l + 1], sizes[l] + 1, &layer) || __builtin_add_overflow(total, layer, &total))
                    fail("sizes are too large");
            }
            flat(p, "params", total, true);
            flat(g, "grads", total, true);
            std::vector<Act> a;
            for (auto& s : acts) a.push_back(parse_act(s));
            return std::make_unique<PM>(p, g, std::move(sizes), std::move(a));
        }), "params"_a.noconvert(), "grads"_a.noconvert(), "sizes"_a, "acts"_a)
        .def("forward", [](PM& self, const py::array& X_, const py::array& out_) {
            if (type_num(out_) != npy_type<T>) fail("out must have the model's dtype");
            auto X = batch_view<T>(X_, self.model.n_in(), "X");
            auto Yhat = view<T>(out_, "out", true);
            expect_shape(Yhat, self.model.n_out(), X.cols, "out");
            expect_disjoint<T>(Yhat, "out", {{X, "X"}});
            py::gil_scoped_release release;
            if (!all_finite(X)) reject("X is not finite");
            if (X.cols) self.model.forward(X, Yhat);
        }, "Yhat = the network's output for X, into out", "X"_a, "out"_a)
        .def("loss", [](PM& self, const py::array& X_, const py::array& Y_, int loss, bool grads, const Weights& s_,
                        double delta) {
            const Loss L = loss_code(loss);
            auto X = batch_view<T>(X_, self.model.n_in(), "X");
            if (X.cols == 0) reject("empty batch");
            auto Y = target_view<T>(Y_, self.model.n_out(), X.cols, L);
            const double* s = weights_view(s_, X.cols);
            py::gil_scoped_release release;
            if (!values_ok(X, Y, L, self.model.n_out(), self.model.softmax_out())) reject("values out of range");
            self.model.huber_delta = delta;
            return self.model.loss(X, Y, L, grads, s);
        }, "J for (X, Y), weighted by sample_weight if given; fills the gradient buffer when grads",
           "X"_a, "Y"_a, "loss"_a, "grads"_a, "sample_weight"_a = py::none(), "delta"_a = 1.0)
        .def("train_step", [](PM& self, const py::array& X_, const py::array& Y_, int loss, const Weights& s_,
                              double delta) {
            const Loss L = loss_code(loss);
            auto X = batch_view<T>(X_, self.model.n_in(), "X");
            if (X.cols == 0) reject("empty batch");
            auto Y = target_view<T>(Y_, self.model.n_out(), X.cols, L);
            const double* s = weights_view(s_, X.cols);
            if (self.opt.kind == OptState<T>::none) fail("no optimizer set");
            // a copy of the settings, and references to the state arrays: another thread
            // binding a new optimizer meanwhile can't free what this step writes into
            OptState<T> opt = self.opt;
            py::list keep = self.opt_arrays;
            bool applied;
            double J;
            {
                py::gil_scoped_release release;
                if (!values_ok(X, Y, L, self.model.n_out(), self.model.softmax_out())) reject("values out of range");
                self.model.huber_delta = delta;
                J = self.model.train_step(X, Y, L, opt, &applied, s);
            }
            return py::make_tuple(J, applied);
        }, "one update; returns (J before it, whether it was applied)", "X"_a, "Y"_a, "loss"_a,
           "sample_weight"_a = py::none(), "delta"_a = 1.0)
        .def("set_penalties", [](PM& self, std::vector<double> l1, std::vector<double> l2) {
            size_t L = size_t(self.model.n_layers());
            if (l1.size() != L || l2.size() != L) fail("l1 and l2 must hold one value per layer");
            for (size_t l = 0; l < L; ++l)
                if (!(l1[l] >= 0 && l2[l] >= 0 && std::isfinite(l1[l]) && std::isfinite(l2[l])))
                    fail("l1 and l2 must be finite and >= 0");
            self.model.set_penalties(std::move(l1), std::move(l2));
        }, "per-layer weight penalties: J += l1 Σ|W| + l2/2 Σ W²", "l1"_a, "l2"_a)
        .def("set_sgd", [](PM& self, double lr, double momentum, bool nesterov, Arr<T>& v, double clip_value,
                           double clip_norm) {
            OptState<T> o;
            o.kind = OptState<T>::sgd;
            o.clip_value = clip_value; o.clip_norm = clip_norm;
            o.lr = lr; o.momentum = momentum; o.nesterov = nesterov;
            o.v = momentum != 0 ? flat(v, "v", self.model.n_params(), true) : nullptr;
            self.opt = o;
            self.opt_arrays = py::list();
            self.opt_arrays.append(v);
        }, "use SGD with these settings and state", "lr"_a, "momentum"_a, "nesterov"_a, "v"_a.noconvert(),
           "clip_value"_a = 0.0, "clip_norm"_a = 0.0)
        .def("set_adam", [](PM& self, double lr, double b1, double b2, double eps, double wd, Arr<T>& m_, Arr<T>& v,
                            py::array_t<int64_t, 0>& t, double clip_value, double clip_norm) {
            OptState<T> o;
            o.kind = OptState<T>::adam;
            o.clip_value = clip_value; o.clip_norm = clip_norm;
            o.lr = lr; o.beta1 = b1; o.beta2 = b2; o.eps = eps; o.weight_decay = wd;
            o.m = flat(m_, "m", self.model.n_params(), true);
            o.v = flat(v, "v", self.model.n_params(), true);
            if (t.ndim() != 1 || t.shape(0) != 1 || !t.writeable()) fail("t must be a writable 1-element int64 array");
            o.t = t.mutable_data();
            self.opt = o;
            self.opt_arrays = py::list();
            self.opt_arrays.append(m_); self.opt_arrays.append(v); self.opt_arrays.append(t);
        }, "use Adam with these settings and state", "lr"_a, "beta1"_a, "beta2"_a, "eps"_a, "weight_decay"_a,
           "m"_a.noconvert(), "v"_a.noconvert(), "t"_a.noconvert(), "clip_value"_a = 0.0, "clip_norm"_a = 0.0)
        .def("set_rmsprop", [](PM& self, double lr, double alpha, double eps, double wd, double momentum,
                               bool centered, Arr<T>& sq, Arr<T>& ga, Arr<T>& buf, double clip_value,
                               double clip_norm) {
            OptState<T> o;
            o.kind = OptState<T>::rmsprop;
            o.clip_value = clip_value; o.clip_norm = clip_norm;
            o.lr = lr; o.alpha = alpha; o.eps = eps; o.weight_decay = wd; o.momentum = momentum;
            o.centered = centered;
            idx n = self.model.n_params();
            o.v = flat(sq, "square_avg", n, true);
            o.m = centered ? flat(ga, "grad_avg", n, true) : nullptr;
            o.u = momentum > 0 ? flat(buf, "buf", n, true) : nullptr;
            self.opt = o;
            self.opt_arrays = py::list();
            self.opt_arrays.append(sq); self.opt_arrays.append(ga); self.opt_arrays.append(buf);
        }, "use RMSprop with these settings and state", "lr"_a, "alpha"_a, "eps"_a, "weight_decay"_a, "momentum"_a,
           "centered"_a, "square_avg"_a.noconvert(), "grad_avg"_a.noconvert(), "buf"_a.noconvert(),
           "clip_value"_a = 0.0, "clip_norm"_a = 0.0)
        .def("set_rprop", [](PM& self, double eta_minus, double eta_plus, double step_min, double step_max,
                             Arr<T>& prev, Arr<T>& step) {
            OptState<T> o;
            o.kind = OptState<T>::rprop;
            o.eta_minus = eta_minus; o.eta_plus = eta_plus; o.step_min = step_min; o.step_max = step_max;
            idx n = self.model.n_params();
            o.v = flat(prev, "prev", n, true);
            o.m = flat(step, "step_size", n, true);
            self.opt = o;
            self.opt_arrays = py::list();
            self.opt_arrays.append(prev); self.opt_arrays.append(step);
        }, "use Rprop with these settings and state", "eta_minus"_a, "eta_plus"_a, "step_min"_a, "step_max"_a,
           "prev"_a.noconvert(), "step_size"_a.noconvert())
        .def("set_dropout", [](PM& self, std::vector<double> rates, uint64_t seed, py::array_t<int64_t, 0>& step) {
            if (idx(rates.size()) != self.model.n_layers()) fail("rates must hold one rate per layer");
            for (double p : rates) if (!(p >= 0 && p < 1)) fail("rates must be in [0, 1)");
            if (step.ndim() != 1 || step.shape(0) != 1 || !step.writeable()) fail("step must be a writable 1-element int64 array");
            self.model.set_dropout(std::move(rates), seed, step.mutable_data());
            self.drop_step = step;
        }, "inverted dropout per layer in training steps; masks from (seed, step[0], layer)", "rates"_a, "seed"_a,
           "step"_a.noconvert())
        .def("parts_for", [](PM& self, idx d) { return self.model.parts_for(d); },
             "the parts a training step on d examples is split into (one per thread, above the grain)", "d"_a)
        .def("run_batches", [](PM& self, const py::array& X_, const py::array& Y_, std::optional<py::array_t<int64_t, 0>> order,
                               idx first, idx count, idx bs, int loss, bool count_correct, bool poll_signals,
                               const Weights& s_, double delta, bool update, const Weights& mean_,
                               const Weights& inv_) {
            const Loss L = loss_code(loss);
            auto X = batch_view<T>(X_, self.model.n_in(), "X");
            auto Y = target_view<T>(Y_, self.model.n_out(), X.cols, L);
            const double* sw = weights_view(s_, X.cols);
            // the input standardisation: both or neither, float64 (n_in,)
            for (const Weights* v : {&mean_, &inv_})
                if (*v && ((*v)->ndim() != 1 || (*v)->shape(0) != self.model.n_in() || (*v)->strides(0) != 8))
                    fail("mean and inv_scale must be contiguous float64 arrays of one value per input");
            const double* mean = mean_ ? mean_->data() : nullptr;
            const double* inv_scale = inv_ ? inv_->data() : nullptr;
            if (!mean != !inv_scale) fail("give both mean and inv_scale, or neither");
            if (bs < 1 || first < 0 || count < 0) fail("bad batch range");
            // the epoch's examples: all of X's columns, or those `order` picks (at most all of them:
            // a permutation, or fit's training part under validation_fraction)
            if (order && (order->ndim() != 1 || order->shape(0) > X.cols || order->strides(0) != 8))
                fail("order must be a contiguous int64 array of at most one index per example");
            const idx N = order ? idx(order->shape(0)) : X.cols;
            // keep to the batches that exist, so no index product can overflow: [first, first+count)
            // within the data's nbat batches, and a batch no larger than the data (same batches)
            idx nbat = N / bs + (N % bs != 0);
            first = std::min(first, nbat);
            count = std::min(count, nbat - first);
            bs = std::max<idx>(1, std::min(bs, N));
            if (Y.is_index() && !indices_ok(Y, X.cols, self.model.n_out())) fail("Y class indices out of range");
            const int64_t* ord = nullptr;
            if (order) {
                ord = order->data();
                // only the entries these batches read: a call per batch (pynn.distributed) stays O(batch)
                idx hi = std::min(N, (first + count) * bs);
                for (idx k = first * bs; k < hi; ++k) if (ord[k] < 0 || ord[k] >= X.cols) fail("order out of range");
            }
            if (update && self.opt.kind == OptState<T>::none) fail("no optimizer set");
            // update=false runs the batches with no optimizer: gradients only (pynn.distributed
            // reduces them across ranks before the update)
            OptState<T> opt = update ? self.opt : OptState<T>{};  // pinned, as in train_step
            py::list keep = self.opt_arrays;
            // Ctrl-C: every 20 ms the loop takes the GIL and runs Python's signal handlers; one that
            // raises (KeyboardInterrupt) ends the run after the step that just completed, and its
            // exception is handed back to the caller with the statistics so far.
            py::object pending = py::none();
            auto last = std::chrono::steady_clock::now();
            std::function<bool()> stop;
            if (poll_signals) stop = [&]() {
                auto now = std::chrono::steady_clock::now();
                if (now - last < std::chrono::milliseconds(20)) return false;
                last = now;
                py::gil_scoped_acquire gil;
                if (PyErr_CheckSignals() == 0) return false;
                py::error_already_set err;
                pending = err.value();
                return true;
            };
            EpochStats st;
            self.model.huber_delta = delta;
            {
                py::gil_scoped_release release;
                st = self.model.run_batches(X, Y, ord, first, count, bs, L, opt, count_correct, stop, sw, mean,
                                            inv_scale, N);
            }
            return py::make_tuple(st.loss_sum, st.seen, st.right, st.judged, st.batches, st.diverged, st.bad_loss,
                                  pending);
        }, "train on batches [first, first+count) of an epoch (update=False: gradients only, the last batch's left in "
           "the buffer); returns (loss_sum, seen, right, judged, batches, "
           "diverged, bad_loss, exception raised by a signal handler or None)",
           "X"_a, "Y"_a, "order"_a.none(true), "first"_a, "count"_a, "batch_size"_a, "loss"_a, "count_correct"_a,
           "poll_signals"_a = false, "sample_weight"_a = py::none(), "delta"_a = 1.0, "update"_a = true,
           "mean"_a = py::none(), "inv_scale"_a = py::none());
}
}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "pynn's compiled kernels (C++ and BLAS); use the pynn package, not this module.";
    install_blas_threads();
    bind<float>(m);
    bind<double>(m);
    // std::domain_error from reject() surfaces as _core.InvalidInput, a ValueError
    static py::exception<std::domain_error> exc(m, "InvalidInput", PyExc_ValueError);
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const std::domain_error& e) {
            PyErr_SetString(exc.ptr(), e.what());
        }
    });
    bind_model<float>(m, "Model32");
    bind_model<double>(m, "Model64");
    m.def("set_num_threads", [](int n) {
        if (n < 1) fail("n must be >= 1");
        set_num_threads(n);
    }, "Threads of the compiled core: its BLAS, and the parts a large training step is split into", "n"_a);
    m.def("get_num_threads", &num_threads, "Threads of the compiled core (set_num_threads)");
    m.def("_set_parallel_grain", [](long long min_cols, long long min_macs) {
        set_parallel_grain({min_cols, min_macs});
    }, "Split a training step only if every part gets min_cols examples and min_macs multiply-adds (tests)",
       "min_cols"_a, "min_macs"_a);
    m.def("_parallel_grain", [] { Grain g = parallel_grain(); return py::make_tuple(g.min_cols, g.min_macs); },
          "(min_cols, min_macs) of _set_parallel_grain");
    m.def("blas_config", [] { return std::string(blas_config()); }, "OpenBLAS build configuration");
}
