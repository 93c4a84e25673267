// The fused whole-network path (see model.hpp). Every numeric step is one of the kernels of
// dense.cpp / activations.cpp / losses.cpp / optim.cpp, in the order network.py calls them.
#include "model.hpp"

#include "fpmode.hpp"
#include "parallel.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>

namespace pynn {

constexpr int MAX_PARTS = 64;  // a step is split into at most this many parts

template <class T>
Model<T>::Model(T* params, T* grads, std::vector<idx> sizes, std::vector<Act> acts)
    : sizes_(std::move(sizes)), acts_(std::move(acts)), params_(params), grads_(grads) {
    idx o = 0;
    for (size_t l = 0; l + 1 < sizes_.size(); ++l) {
        idx h = sizes_[l + 1], n = sizes_[l];
        W_.push_back({params_ + o, h, n, n, 1});  // C-ordered (h, n), as network.py lays it out
        dW_.push_back({grads_ + o, h, n, n, 1});
        o += h * n;
        b_.push_back({params_ + o, h, 1, 1, 1});
        db_.push_back({grads_ + o, h, 1, 1, 1});
        o += h;
    }
    n_params_ = o;
}

// Workspaces come from a small pool, so concurrent calls (predictions from several threads)
// never share buffers; a workspace grows only when a larger batch than ever before arrives.
template <class T>
std::unique_ptr<Workspace<T>> Model<T>::acquire(idx d) {
    std::unique_ptr<Workspace<T>> ws;
    {
        std::lock_guard<std::mutex> lock(pool_mutex_);
        if (!pool_.empty()) {
            auto it = std::find_if(pool_.begin(), pool_.end(), [d](auto& w) { return w->cap >= d; });
            if (it == pool_.end()) it = pool_.begin();
            ws = std::move(*it);
            pool_.erase(it);
        }
    }
    if (!ws) ws = std::make_unique<Workspace<T>>();
    bool drop = drop_step_ != nullptr;
    if (ws->cap < d || (drop && !ws->has_dropout)) {
        d = std::max(d, ws->cap);
        idx L = idx(acts_.size()), m = n_out(), hmax = *std::max_element(sizes_.begin() + 1, sizes_.end());
        idx total = 0;
        for (idx l = 0; l < L; ++l) total += sizes_[l + 1] * d * (l < L - 1 && backward_from_z(acts_[l]) ? 2 : 1);
        total += m * d + 2 * hmax * d + n_in() * d + m * d;
        idx act_total = total - (m * d + 2 * hmax * d + n_in() * d + m * d);
        if (drop) total += 2 * act_total;
        ws->buf.assign(size_t(total), T(0));
        T* p = ws->buf.data();
        ws->A.resize(size_t(L));
        ws->Z.assign(size_t(L), nullptr);
        for (idx l = 0; l < L; ++l) {
            ws->A[l] = p; p += sizes_[l + 1] * d;
            if (l < L - 1 && backward_from_z(acts_[l])) { ws->Z[l] = p; p += sizes_[l + 1] * d; }
        }
        ws->Z_out = p; p += m * d;
        ws->dA[0] = p; p += hmax * d;
        ws->dA[1] = p; p += hmax * d;
        ws->Xb = p; p += n_in() * d;
        ws->Yb = p; p += m * d;
        ws->M.assign(size_t(L), nullptr);
        ws->D.assign(size_t(L), nullptr);
        if (drop) {
            for (idx l = 0; l < L; ++l) { ws->M[l] = p; p += sizes_[l + 1] * d; }
            for (idx l = 0; l < L; ++l) { ws->D[l] = p; p += sizes_[l + 1] * d; }
        }
        ws->has_dropout = drop;
        ws->Ib.assign(size_t(d), 0);
        ws->Sb.assign(size_t(d), 0.0);
        ws->lse_buf.assign(size_t(d), T(0));
        ws->lse = ws->lse_buf.data();
        ws->cap = d;
    }
    return ws;
}

template <class T>
void Model<T>::release(std::unique_ptr<Workspace<T>> ws) {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    pool_.push_back(std::move(ws));
}

template <class T>
void Model<T>::forward(CMat<T> X, Mat<T> out) {
    FlushSubnormals fz;
    idx d = X.cols, L = idx(acts_.size());
    auto ws = acquire(d);
    CMat<T> A = X;
    for (idx l = 0; l < L; ++l) {
        Mat<T> Al = l == L - 1 ? out : act_view(*ws, l, d);
        layer_forward<T>(W_[l], A, b_[l], acts_[l], Al, Al);
        A = Al;
    }
    release(std::move(ws));
}

template <class T>
void Model<T>::set_dropout(std::vector<double> rates, uint64_t seed, int64_t* step) {
    rates_ = std::move(rates);
    drop_seed_ = seed;
    drop_step_ = step;
}

template <class T>
void Model<T>::forward_train(Workspace<T>& ws, CMat<T> X, idx d, bool train) {
    idx L = idx(acts_.size());
    CMat<T> A = X;
    for (idx l = 0; l < L; ++l) {
        Mat<T> Al = act_view(ws, l, d);
        T* z = l == L - 1 ? ws.Z_out : ws.Z[l];  // Z is kept for the loss, and where a backward reads it
        Mat<T> Z = z ? Mat<T>{z, sizes_[l + 1], d, 1, sizes_[l + 1]} : Al;
        layer_forward<T>(W_[l], A, b_[l], acts_[l], Z, Al, l == L - 1 ? ws.lse : nullptr);
        A = Al;
        if (dropped(l, train)) {  // the next layer reads D = A ⊙ M; A itself stays for act'(A)
            idx h = sizes_[l + 1];
            dropout_mask<T>(drop_seed_, uint64_t(*drop_step_), uint64_t(l), rates_[size_t(l)], {ws.M[l], h, d, 1, h});
            for (idx k = 0; k < h * d; ++k) ws.D[l][k] = ws.A[l][k] * ws.M[l][k];
            A = CMat<T>{ws.D[l], h, d, 1, h};
        }
    }
}

static bool canonical(Act a, Loss l) {
    return (a == Act::linear && l == Loss::mse) || (a == Act::sigmoid && l == Loss::bce) ||
           (a == Act::softmax && l == Loss::cross_entropy) || (a == Act::exp && l == Loss::poisson);
}

template <class T>
void Model<T>::set_penalties(std::vector<double> l1, std::vector<double> l2) {
    bool any = false;
    for (size_t l = 0; l < l1.size(); ++l) any |= l1[l] != 0 || l2[l] != 0;
    if (any) { l1_ = std::move(l1); l2_ = std::move(l2); }
    else { l1_.clear(); l2_.clear(); }
}

template <class T>
double Model<T>::penalty() const {
    double s = 0;
    for (size_t l = 0; l < l1_.size(); ++l)
        if (l1_[l] != 0 || l2_[l] != 0) s += penalty_forward<T>(W_[l].p, W_[l].rows * W_[l].cols, l1_[l], l2_[l]);
    return s;
}

// J of the batch (the weighted mean when s is given) plus the weight penalty.
template <class T>
double Model<T>::loss_value(Workspace<T>& ws, CMat<T> Y, Loss loss, idx d, const double* s, bool with_penalty) {
    Act out = acts_.back();
    CMat<T> Z{ws.Z_out, n_out(), d, 1, n_out()};
    CMat<T> Yhat = act_view(ws, idx(acts_.size()) - 1, d);
    auto value = [&](CMat<T> Zc, CMat<T> Yhc, CMat<T> Yc) {
        if (out == Act::sigmoid && loss == Loss::bce) return bce_logits_forward<T>(Zc, Yc);
        if (out == Act::softmax && loss == Loss::cross_entropy)  // from the log Σ exp forward_train kept
            return cross_entropy_lse_forward<T>(Zc, Yc, ws.lse + (Zc.p - Z.p) / Z.cs);
        if (out == Act::exp && loss == Loss::poisson) return poisson_logits_forward<T>(Zc, Yc);
        return loss_forward<T>(loss, Yhc, Yc, huber_delta);
    };
    double pen = l1_.empty() || !with_penalty ? 0.0 : penalty();
    if (!s) return value(Z, Yhat, Y) + pen;
    // Σ s_j L_j / Σ s_j: each example's L_j is the same kernel on a batch of one column
    double num = 0, den = 0;
    for (idx j = 0; j < d; ++j) {
        if (s[j] == 0) continue;
        num += s[j] * value(Z.col_range(j, j + 1), Yhat.col_range(j, j + 1), Y.col_range(j, j + 1));
        den += s[j];
    }
    return num / den + pen;
}

// Column j of dZ times s_j d / Σ s: the weighted mean's output gradient, from the unweighted one
template <class T>
static void scale_columns(Mat<T> dZ, const double* s) {
    double sum = 0;
    for (idx j = 0; j < dZ.cols; ++j) sum += s[j];
    for (idx j = 0; j < dZ.cols; ++j) {
        T c = T(s[j] * double(dZ.cols) / sum);
        for (idx i = 0; i < dZ.rows; ++i) dZ(i, j) *= c;
    }
}

template <class T>
void Model<T>::backward(Workspace<T>& ws, CMat<T> X, CMat<T> Y, Loss loss, idx d, const double* s, bool train, T* g,
                        T scale) {
    idx L = idx(acts_.size());
    // layer l's gradient views in g, laid out as the gradient buffer
    auto dW = [&](idx l) { Mat<T> v = dW_[l]; v.p = g + (v.p - grads_); return v; };
    auto db = [&](idx l) { Mat<T> v = db_[l]; v.p = g + (v.p - grads_); return v; };
    auto rescale = [&](Mat<T> top) {  // a part's share: its mean gradient times its weight
        if (scale != T(1)) for (idx k = 0; k < top.rows * d; ++k) top.p[k] *= scale;
    };
    auto dA = [&](idx l) { return Mat<T>{ws.dA[l % 2], sizes_[l + 1], d, 1, sizes_[l + 1]}; };
    auto A_prev = [&](idx l) {
        if (l == 0) return X;
        if (dropped(l - 1, train)) return CMat<T>{ws.D[l - 1], sizes_[l], d, 1, sizes_[l]};
        return CMat<T>(act_view(ws, l - 1, d));
    };
    CMat<T> Yhat = act_view(ws, L - 1, d);
    idx top;
    if (canonical(acts_.back(), loss)) {  // dZ(L) = (Yhat - Y) / d, then the dense backward
        Mat<T> dZ = dA(L - 1);
        output_backward<T>(Yhat, Y, dZ);
        if (s) scale_columns(dZ, s);
        rescale(dZ);
        Mat<T> dAp = L > 1 ? dA(L - 2) : Mat<T>{};
        dense_backward<T>(dZ, A_prev(L - 1), W_[L - 1], dW(L - 1), db(L - 1), L > 1 ? &dAp : nullptr);
        top = L - 2;
    } else {
        loss_backward<T>(loss, Yhat, Y, dA(L - 1), huber_delta);
        if (s) scale_columns(dA(L - 1), s);
        rescale(dA(L - 1));
        top = L - 1;
    }
    for (idx l = top; l >= 0; --l) {
        Mat<T> dAl = dA(l), dAp = l > 0 ? dA(l - 1) : Mat<T>{};
        if (dropped(l, train))  // back through the mask: dA ⊙ M
            for (idx k = 0; k < dAl.rows * d; ++k) dAl.p[k] *= ws.M[l][k];
        layer_backward<T>(dAl, backward_view(ws, l, d), acts_[l], W_[l], A_prev(l), dAl, dW(l), db(l),
                          l > 0 ? &dAp : nullptr);
    }
}

template <class T>
double Model<T>::add_penalty(idx o0, idx o1) {
    double pen = 0;  // the weight penalty and its gradient, in one pass over each W (within [o0, o1))
    for (size_t l = 0; l < l1_.size(); ++l) {
        if (l1_[l] == 0 && l2_[l] == 0) continue;
        idx w0 = W_[l].p - params_, w1 = w0 + W_[l].rows * W_[l].cols;
        idx a = std::max(w0, o0), b = std::min(w1, o1);
        if (a < b) pen += penalty_step<T>(params_ + a, b - a, l1_[l], l2_[l], grads_ + a);
    }
    return pen;
}

// Σ s over d examples (sample weights), or d without weights: what a mean over them divides by.
static double weight_sum(const double* s, idx d) {
    if (!s) return double(d);
    double total = 0;
    for (idx j = 0; j < d; ++j) total += s[j];
    return total;
}

// grads_[o0:o1] += the gradients of parts 1..P-1, in part order (part 0 wrote grads_ itself).
template <class T>
void Model<T>::sum_part_grads(const Workspace<T>& ws, int P, idx o0, idx o1) {
    for (int k = 1; k < P; ++k) {
        const T* gk = ws.part_grads.data() + (k - 1) * n_params_;
        for (idx i = o0; i < o1; ++i) grads_[i] += gk[i];
    }
}

// How many parts a step on d examples is split into: pynn's thread count, unless a part would
// get fewer examples or multiply-adds than the grain (then the split costs more than it saves).
// Dropout steps are not split (their masks are drawn for the whole batch).
template <class T>
int Model<T>::parts_for(idx d) const {
    int P = std::min(num_threads(), MAX_PARTS);
    if (P <= 1 || drop_step_) return 1;
    Grain g = parallel_grain();
    double macs = 0;  // forward, weight gradient and input gradient: three products per layer
    for (size_t l = 0; l + 1 < sizes_.size(); ++l) macs += 3.0 * double(sizes_[l]) * double(sizes_[l + 1]);
    macs *= double(d);
    P = int(std::min<double>(P, double(d / g.min_cols)));
    if (g.min_macs > 0) P = int(std::min<double>(P, std::floor(macs / double(g.min_macs))));
    return std::max(P, 1);
}

// Points parts[k] of ws at columns [col(k), col(k+1)) of its buffers (no copy, no allocation
// once ws has served a split step before).
template <class T>
void Model<T>::point_parts(Workspace<T>& ws, idx d, int P) {
    const idx L = idx(acts_.size()), m = n_out();
    const idx hmax = *std::max_element(sizes_.begin() + 1, sizes_.end());
    if (idx(ws.parts.size()) < P) ws.parts.resize(size_t(P));
    if (idx(ws.part_grads.size()) < (P - 1) * n_params_) ws.part_grads.resize(size_t((P - 1) * n_params_));
    for (int k = 0; k < P; ++k) {
        Workspace<T>& pw = ws.parts[size_t(k)];
        idx c0 = part_col(k, d, P);
        pw.A.resize(size_t(L));
        pw.Z.resize(size_t(L));
        for (idx l = 0; l < L; ++l) {
            pw.A[l] = ws.A[l] + c0 * sizes_[l + 1];
            pw.Z[l] = ws.Z[l] ? ws.Z[l] + c0 * sizes_[l + 1] : nullptr;
        }
        pw.Z_out = ws.Z_out + c0 * m;
        pw.dA[0] = ws.dA[0] + c0 * hmax;
        pw.dA[1] = ws.dA[1] + c0 * hmax;
        pw.lse = ws.lse + c0;
    }
}

// Part k of P of a split gradient: its forward pass, loss and backward pass on its own columns,
// with its output gradient scaled by its share of the batch (n_k / d, or Σ_k s / Σ s = total),
// so that the parts' gradients sum to the batch's. Its gradient goes to grads_ (part 0) or to
// part_grads; returns its share of J's data term.
template <class T>
double Model<T>::part_grads(Workspace<T>& ws, int k, int P, CMat<T> X, CMat<T> Y, Loss loss, idx d, const double* s,
                            double total, bool train) {
    const idx n = n_params_, c0 = part_col(k, d, P), nk = part_col(k + 1, d, P) - c0;
    T* g = k == 0 ? grads_ : ws.part_grads.data() + (k - 1) * n;
    const double* sk = s ? s + c0 : nullptr;
    const double share = weight_sum(sk, nk);
    if (share == 0) {  // every weight in this part is 0: it adds nothing
        std::fill(g, g + n, T(0));
        return 0;
    }
    Workspace<T>& pw = ws.parts[size_t(k)];
    CMat<T> Xk = X.col_range(c0, c0 + nk), Yk = Y.col_range(c0, c0 + nk);
    forward_train(pw, Xk, nk, train);
    double J = share / total * loss_value(pw, Yk, loss, nk, sk, false);
    backward(pw, Xk, Yk, loss, nk, sk, train, g, T(share / total));
    return J;
}

template <class T>
double Model<T>::data_grads(Workspace<T>& ws, CMat<T> X, CMat<T> Y, Loss loss, idx d, const double* s, bool train) {
    const int P = parts_for(d);
    if (P == 1) {
        forward_train(ws, X, d, train);
        double J = loss_value(ws, Y, loss, d, s, false);
        backward(ws, X, Y, loss, d, s, train, grads_, T(1));
        return J;
    }
    point_parts(ws, d, P);
    const double total = weight_sum(s, d);
    double Jk[MAX_PARTS] = {};
    {
        BlasOnOneThread one;
        run_parts(P, [&](int k) {
            FlushSubnormals fz;  // this thread's own mode (the caller's covers part 0 already)
            Jk[k] = part_grads(ws, k, P, X, Y, loss, d, s, total, train);
        });
    }
    double J = 0;
    for (int k = 0; k < P; ++k) J += Jk[k];
    sum_part_grads(ws, P, 0, n_params_);
    return J;
}

template <class T>
CMat<T> Model<T>::dense_targets(Workspace<T>& ws, const Target<T>& Y, idx d) {
    if (!Y.is_index()) return Y.dense;
    one_hot(ws, Y, 0, d);
    return {ws.Yb, n_out(), d, 1, n_out()};
}

// Columns [c0, c1) of the one-hot targets of class indices Y, into the workspace.
template <class T>
void Model<T>::one_hot(Workspace<T>& ws, const Target<T>& Y, idx c0, idx c1) {
    const idx m = n_out();
    std::fill(ws.Yb + c0 * m, ws.Yb + c1 * m, T(0));
    for (idx j = c0; j < c1; ++j) ws.Yb[j * m + Y.index[j * Y.index_stride]] = T(1);
}

template <class T>
double Model<T>::loss(CMat<T> X, const Target<T>& Y, Loss loss, bool grads, const double* s) {
    FlushSubnormals fz;
    idx d = X.cols;
    auto ws = acquire(d);
    CMat<T> Yd = dense_targets(*ws, Y, d);
    double J;
    if (grads) {
        J = data_grads(*ws, X, Yd, loss, d, s, false);
        J += add_penalty(0, n_params_);  // the penalty comes with its gradient
    } else {
        forward_train(*ws, X, d);
        J = loss_value(*ws, Yd, loss, d, s, true);
    }
    release(std::move(ws));
    return J;
}

// Clip, then update; an update that would leave a weight or an optimizer state non-finite
// (an overflow from finite gradients) is taken back, so the network keeps its last finite
// weights. The copy it keeps costs one pass over the parameters (and state).
template <class T>
bool Model<T>::update(const OptState<T>& opt) {
    // kind none (run_batches(update=False), pynn.distributed): gradients only, so nothing is
    // clipped, copied or changed; the caller reduces and applies them
    if (opt.kind == OptState<T>::none) return true;
    const idx n = n_params_;
    clip_gradient<T>(grads_, n, opt.clip_value, opt.clip_norm);
    undo_.resize(size_t(4 * n));
    long long t = opt.kind == OptState<T>::adam ? ++*opt.t : 0;
    bool ok = update_range(opt, t, 0, n);
    if (!ok) {
        undo_range(opt, 0, n);
        if (opt.kind == OptState<T>::adam) --*opt.t;
    }
    return ok;
}

// The state arrays other than Adam's that an update overwrites and undo_ keeps, at undo_[(s + 1) n]
// (the set_* bindings leave unused ones null; plain SGD keeps no velocity).
template <class T>
static std::array<T*, 3> saved_state(const OptState<T>& opt) {
    return {opt.kind == OptState<T>::sgd && opt.momentum == 0 ? nullptr : opt.v, opt.m, opt.u};
}

// The optimizer's update of parameters [o, o + nk): every update is elementwise, so the ranges
// of a split step give the bits of one whole pass. What it overwrites goes to undo_ first (Adam
// keeps its range's p, m, v at undo_[3o:3o+3nk], in its own pass; the others each array's range
// at undo_[s n + o]); t is Adam's step count for this update.
template <class T>
bool Model<T>::update_range(const OptState<T>& opt, long long t, idx o, idx nk) {
    const idx n = n_params_;
    T* p = params_ + o;
    const T* g = grads_ + o;
    auto at = [o](T* a) { return a ? a + o : nullptr; };
    if (opt.kind == OptState<T>::adam)
        return adam_update<T>(p, g, at(opt.m), at(opt.v), nk, t, opt.lr, opt.beta1, opt.beta2, opt.eps,
                              opt.weight_decay, undo_.data() + 3 * o);
    const auto state = saved_state(opt);
    std::memcpy(undo_.data() + o, p, size_t(nk) * sizeof(T));
    for (int s = 0; s < 3; ++s)
        if (state[s]) std::memcpy(undo_.data() + (s + 1) * n + o, state[s] + o, size_t(nk) * sizeof(T));
    if (opt.kind == OptState<T>::sgd) return sgd_update<T>(p, g, at(opt.v), nk, opt.lr, opt.momentum, opt.nesterov);
    if (opt.kind == OptState<T>::rmsprop)
        return rmsprop_update<T>(p, g, at(opt.v), at(opt.m), at(opt.u), nk, opt.lr, opt.alpha, opt.eps,
                                 opt.weight_decay, opt.momentum, opt.centered);
    if (opt.kind == OptState<T>::rprop)
        return rprop_update<T>(p, g, at(opt.v), at(opt.m), nk, opt.eta_minus, opt.eta_plus, opt.step_min,
                               opt.step_max);
    return true;
}

// Puts back what update_range(opt, t, o, nk) overwrote.
template <class T>
void Model<T>::undo_range(const OptState<T>& opt, idx o, idx nk) {
    const idx n = n_params_;
    const size_t bytes = size_t(nk) * sizeof(T);
    if (opt.kind == OptState<T>::adam) {
        const T* save = undo_.data() + 3 * o;
        std::memcpy(params_ + o, save, bytes);
        std::memcpy(opt.m + o, save + nk, bytes);
        std::memcpy(opt.v + o, save + 2 * nk, bytes);
        return;
    }
    const auto state = saved_state(opt);
    std::memcpy(params_ + o, undo_.data() + o, bytes);
    for (int s = 0; s < 3; ++s)
        if (state[s]) std::memcpy(state[s] + o, undo_.data() + (s + 1) * n + o, bytes);
}

template <class T>
double Model<T>::step_on(Workspace<T>& ws, CMat<T> X, CMat<T> Y, Loss loss, const OptState<T>& opt, idx d,
                         bool* applied, const double* s) {
    double J = data_grads(ws, X, Y, loss, d, s, true);
    J += add_penalty(0, n_params_);  // the penalty comes with its gradient
    if (drop_step_) ++*drop_step_;  // the next step draws new masks
    // A step whose loss or gradient is not finite changes nothing.
    // Adam without clipping needs no separate pass over the gradient: a non-finite one makes the
    // second moment non-finite, so adam_update reports it and update() takes the step back.
    bool checked_by_update = opt.kind == OptState<T>::adam && opt.clip_value == 0 && opt.clip_norm == 0;
    *applied = (J - J) == 0 && (checked_by_update || finite_n(grads_, n_params_)) && update(opt);
    return J;
}

template <class T>
double Model<T>::train_step(CMat<T> X, const Target<T>& Y, Loss loss, const OptState<T>& opt, bool* applied,
                            const double* s) {
    FlushSubnormals fz;
    idx d = X.cols;
    auto ws = acquire(d);
    CMat<T> Yd = dense_targets(*ws, Y, d);
    double J = step_on(*ws, X, Yd, loss, opt, d, applied, s);
    release(std::move(ws));
    return J;
}

// (right, judged) for one batch: softmax outputs by argmax per example, others by thresholding
// each output at 0.5 — as training.correct_count does; with weights s, each example counts s_j
// (its share of outputs right, times s_j), as training.correct_share.
template <class T>
static void count_correct(CMat<T> Yhat, CMat<T> Y, const int64_t* index, idx istride, bool argmax, EpochStats& st,
                          const double* s = nullptr) {
    idx m = Yhat.rows, d = Yhat.cols;
    if (s) {
        for (idx j = 0; j < d; ++j) {
            double r = 0;
            if (argmax) {
                idx best = 0, truth = 0;
                for (idx i = 1; i < m; ++i) if (Yhat(i, j) > Yhat(best, j)) best = i;
                if (index) truth = idx(index[j * istride]);
                else for (idx i = 1; i < m; ++i) if (Y(i, j) > Y(truth, j)) truth = i;
                r = best == truth;
            } else {
                for (idx i = 0; i < m; ++i) r += (Yhat(i, j) > T(0.5)) == (Y(i, j) > T(0.5));
                r /= double(m);
            }
            st.right += s[j] * r;
            st.judged += s[j];
        }
        return;
    }
    if (argmax) {
        for (idx j = 0; j < d; ++j) {
            idx best = 0, truth = 0;
            for (idx i = 1; i < m; ++i) if (Yhat(i, j) > Yhat(best, j)) best = i;
            if (index) {
                truth = idx(index[j * istride]);
            } else {
                for (idx i = 1; i < m; ++i) if (Y(i, j) > Y(truth, j)) truth = i;
            }
            st.right += best == truth;
        }
        st.judged += d;
        return;
    }
    for (idx j = 0; j < d; ++j)
        for (idx i = 0; i < m; ++i) st.right += (Yhat(i, j) > T(0.5)) == (Y(i, j) > T(0.5));
    st.judged += m * d;
}

// One training step on a batch split into P parts, all of it on the team (run_phases):
// phase 1, part k: its columns gathered, its forward, loss and backward pass into its gradient
// buffer, its examples counted; phase 2, range k of the parameters: the parts' gradients summed
// (in part order, as data_grads sums them), the weight penalty's gradient added, the gradient
// checked; phase 3, range k: the update, unless J or a gradient is not finite. The weights come
// out as those of train_step on the same batch (the same sums, elementwise updates), J's
// penalty term summed by ranges.
template <class T>
double Model<T>::step_split(Workspace<T>& ws, CMat<T> X, const Target<T>& Y,
                            FnRef<void(idx, idx)> gather, Loss loss, const OptState<T>& opt, idx d,
                            const double* s, int P, bool want_correct, bool argmax, bool* applied,
                            EpochStats& counted) {
    const idx n = n_params_, m = n_out();
    point_parts(ws, d, P);
    undo_.resize(size_t(4 * n));
    const double total = weight_sum(s, d);
    CMat<T> Yd = Y.is_index() ? CMat<T>{ws.Yb, m, d, 1, m} : Y.dense;
    CMat<T> Yhat = act_view(ws, idx(acts_.size()) - 1, d);
    // parameter ranges on 64-byte boundaries, so no two threads write one cache line
    const idx align = idx(64 / sizeof(T));
    auto range = [&](int k) { return k == P ? n : std::min(n, part_col(k, n, P) / align * align); };
    const bool check_grads = opt.kind != OptState<T>::adam;  // adam_update detects a non-finite one itself
    const long long t = opt.kind == OptState<T>::adam ? *opt.t + 1 : 0;
    double Jk[MAX_PARTS] = {}, pen[MAX_PARTS] = {};
    EpochStats cnt[MAX_PARTS];
    bool finite[MAX_PARTS], ok[MAX_PARTS];
    auto go = [&] {  // J and every range's gradient finite: the same answer on every thread
        double J = 0;
        for (int k = 0; k < P; ++k) J += Jk[k];
        for (int k = 0; k < P; ++k) J += pen[k];
        bool all = (J - J) == 0;
        for (int k = 0; k < P; ++k) all = all && finite[k];
        return std::make_pair(J, all);
    };
    // phase 1, part k: its columns
    auto columns = [&](int k) {
        FlushSubnormals fz;
        const idx c0 = part_col(k, d, P), c1 = part_col(k + 1, d, P);
        gather(c0, c1);
        if (Y.is_index()) one_hot(ws, Y, c0, c1);
        Jk[k] = part_grads(ws, k, P, X, Yd, loss, d, s, total, true);
        if (want_correct) {
            count_correct<T>(Yhat.col_range(c0, c1), Yd.col_range(c0, c1),
                             Y.is_index() ? Y.index + c0 * Y.index_stride : nullptr, Y.index_stride, argmax, cnt[k],
                             s ? s + c0 : nullptr);
        }
    };
    // phase 2, range k of the parameters: the gradients summed, the penalty added
    auto ranges = [&](int k) {
        FlushSubnormals fz;
        const idx o0 = range(k), o1 = range(k + 1);
        sum_part_grads(ws, P, o0, o1);
        pen[k] = add_penalty(o0, o1);
        finite[k] = !check_grads || finite_n(grads_ + o0, o1 - o0);
    };
    // phase 3, range k: the update
    auto apply = [&](int k) {
        FlushSubnormals fz;
        const idx o0 = range(k), o1 = range(k + 1);
        ok[k] = true;
        if (go().second) ok[k] = update_range(opt, t, o0, o1 - o0);
    };
    const FnRef<void(int)> phases[3] = {columns, ranges, apply};
    run_phases(P, phases, 3);
    auto [J, finite_all] = go();
    bool all_ok = finite_all;
    for (int k = 0; k < P; ++k) all_ok = all_ok && ok[k];
    if (finite_all && !all_ok)  // an update overflowed somewhere: take back every range
        for (int k = 0; k < P; ++k) undo_range(opt, range(k), range(k + 1) - range(k));
    if (all_ok && opt.kind == OptState<T>::adam) *opt.t = t;
    *applied = all_ok;
    for (int k = 0; k < P; ++k) {
        counted.right += cnt[k].right;
        counted.judged += cnt[k].judged;
    }
    return J;
}

template <class T>
EpochStats Model<T>::run_batches(CMat<T> X, const Target<T>& Y, const int64_t* order, idx first, idx count, idx bs,
                                 Loss loss, const OptState<T>& opt, bool want_correct,
                                 const std::function<bool()>& stop, const double* sw, const double* mean,
                                 const double* inv_scale, idx n_order) {
    EpochStats st;
    idx N = order && n_order >= 0 ? n_order : X.cols, n = n_in(), m = n_out();
    auto ws = acquire(bs);
    bool argmax = loss == Loss::cross_entropy && m > 1;
    // split steps set pynn's OpenBLAS to one thread; once for the run rather than once a step
    std::optional<BlasOnOneThread> one;
    if (parts_for(bs) > 1) one.emplace();
    // a split step updates the parameters by ranges, which clipping (by the norm of the whole
    // gradient) would not allow; and with no optimizer there is nothing to update
    const bool split_ok = opt.kind != OptState<T>::none && opt.clip_value == 0 && opt.clip_norm == 0;
    // shuffled, or standardised: X's columns are copied into the workspace (F-ordered)
    const bool gathered = order || mean;
    for (idx k = first; k < first + count; ++k) {
        idx s = k * bs, nb = std::min(N, s + bs) - s;
        if (nb <= 0) break;
        // Columns [j0, j1) of the batch into the workspace: X and, shuffled, dense targets. The
        // class indices and weights (one value an example) are gathered whole below.
        auto gather = [&](idx j0, idx j1) {
            for (idx j = j0; j < j1 && gathered; ++j) {
                idx c = order ? idx(order[s + j]) : s + j;
                T* dst = ws->Xb + j * n;
                if (mean) for (idx i = 0; i < n; ++i) dst[i] = T((double(X(i, c)) - mean[i]) * inv_scale[i]);
                else if (X.rs == 1 && n >= 64) std::memcpy(dst, X.p + c * X.cs, size_t(n) * sizeof(T));
                else for (idx i = 0; i < n; ++i) dst[i] = X(i, c);  // short columns: no libc call
                if (order && !Y.is_index()) {
                    T* ydst = ws->Yb + j * m;
                    for (idx i = 0; i < m; ++i) ydst[i] = Y.dense(i, c);
                }
            }
        };
        CMat<T> Xb = gathered ? CMat<T>{ws->Xb, n, nb, 1, n} : X.col_range(s, s + nb);
        Target<T> Yb;
        if (order) {
            for (idx j = 0; j < nb; ++j) {
                idx c = idx(order[s + j]);
                if (sw) ws->Sb[j] = sw[c];
                if (Y.is_index()) ws->Ib[j] = Y.index[c * Y.index_stride];
            }
            if (Y.is_index()) Yb.index = ws->Ib.data();
            else Yb.dense = {ws->Yb, m, nb, 1, m};
        } else {  // in order: views of X (unless standardised) and of Y, nothing is copied
            if (Y.is_index()) { Yb.index = Y.index + s * Y.index_stride; Yb.index_stride = Y.index_stride; }
            else Yb.dense = Y.dense.col_range(s, s + nb);
        }
        const double* sb = sw ? (order ? ws->Sb.data() : sw + s) : nullptr;
        double size = double(nb);
        if (sb) {
            size = 0;
            for (idx j = 0; j < nb; ++j) size += sb[j];
            if (size == 0) {  // Σ s_i = 0: nothing to learn from this batch
                st.batches += 1;
                if (stop && stop()) break;
                continue;
            }
        }
        const int P = split_ok ? parts_for(nb) : 1;
        bool applied;
        double J;
        EpochStats counted;
        if (P > 1) {
            J = step_split(*ws, Xb, Yb, gather, loss, opt, nb, sb, P, want_correct, argmax, &applied, counted);
        } else {
            gather(0, nb);
            CMat<T> Yd = dense_targets(*ws, Yb, nb);
            {  // not around stop(), which runs Python's signal handlers
                FlushSubnormals fz;
                J = step_on(*ws, Xb, Yd, loss, opt, nb, &applied, sb);
            }
            if (applied && want_correct)
                count_correct<T>(act_view(*ws, idx(acts_.size()) - 1, nb), Yd, Yb.is_index() ? Yb.index : nullptr,
                                 Yb.index_stride, argmax, st, sb);
        }
        if (!applied) {
            st.diverged = true;
            st.bad_loss = J;
            break;
        }
        st.loss_sum += J * size;
        st.seen += size;
        st.batches += 1;
        st.right += counted.right;
        st.judged += counted.judged;
        if (stop && stop()) break;
    }
    release(std::move(ws));
    return st;
}

template class Model<float>;
template class Model<double>;

}  // namespace pynn
