// The fused whole-network path (see model.hpp). Every numeric step is one of the kernels of
// dense.cpp / activations.cpp / losses.cpp / optim.cpp, in the order network.py calls them.
#include "model.hpp"

#include "fpmode.hpp"
#include "parallel.hpp"

#include <algorithm>
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
    auto col = [](CMat<T> a, idx j) { return CMat<T>{a.p + j * a.cs, a.rows, 1, a.rs, a.cs}; };
    double num = 0, den = 0;
    for (idx j = 0; j < d; ++j) {
        if (s[j] == 0) continue;
        num += s[j] * value(col(Z, j), col(Yhat, j), col(Y, j));
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
double Model<T>::add_penalty() {
    double pen = 0;  // the weight penalty and its gradient, in one pass over each W
    for (size_t l = 0; l < l1_.size(); ++l)
        if (l1_[l] != 0 || l2_[l] != 0)
            pen += penalty_step<T>(W_[l].p, W_[l].rows * W_[l].cols, l1_[l], l2_[l], dW_[l].p);
    return pen;
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

template <class T>
double Model<T>::data_grads(Workspace<T>& ws, CMat<T> X, CMat<T> Y, Loss loss, idx d, const double* s, bool train) {
    const int P = parts_for(d);
    if (P == 1) {
        forward_train(ws, X, d, train);
        double J = loss_value(ws, Y, loss, d, s, false);
        backward(ws, X, Y, loss, d, s, train, grads_, T(1));
        return J;
    }
    // Part k takes columns [k d / P, (k+1) d / P): its forward pass, loss and backward pass on
    // its own columns of the workspace, with its output gradient scaled by its share of the
    // batch (n_k / d, or Σ_k s / Σ s), so that the parts' gradients sum to the batch's.
    const idx L = idx(acts_.size()), n = n_params_, m = n_out();
    const idx hmax = *std::max_element(sizes_.begin() + 1, sizes_.end());
    if (idx(ws.parts.size()) < P) ws.parts.resize(size_t(P));
    if (idx(ws.part_grads.size()) < (P - 1) * n) ws.part_grads.resize(size_t((P - 1) * n));
    auto col = [](idx k, idx d, int P) { return idx(double(k) * double(d) / double(P)); };
    double total = double(d);
    if (s) { total = 0; for (idx j = 0; j < d; ++j) total += s[j]; }
    double Jk[MAX_PARTS] = {};
    for (int k = 0; k < P; ++k) {  // point each part at its columns of the batch's buffers
        Workspace<T>& pw = ws.parts[size_t(k)];
        idx c0 = col(k, d, P);
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
    auto part = [&](int k) {
        FlushSubnormals fz;  // this thread's own mode (the caller's covers part 0 already)
        idx c0 = col(k, d, P), nk = col(k + 1, d, P) - c0;
        T* g = k == 0 ? grads_ : ws.part_grads.data() + (k - 1) * n;
        const double* sk = s ? s + c0 : nullptr;
        double share = double(nk);
        if (sk) { share = 0; for (idx j = 0; j < nk; ++j) share += sk[j]; }
        if (share == 0) {  // every weight in this part is 0: it adds nothing
            std::fill(g, g + n, T(0));
            Jk[k] = 0;
            return;
        }
        Workspace<T>& pw = ws.parts[size_t(k)];
        CMat<T> Xk{X.p + c0 * X.cs, X.rows, nk, X.rs, X.cs}, Yk{Y.p + c0 * Y.cs, Y.rows, nk, Y.rs, Y.cs};
        forward_train(pw, Xk, nk, train);
        Jk[k] = share / total * loss_value(pw, Yk, loss, nk, sk, false);
        backward(pw, Xk, Yk, loss, nk, sk, train, g, T(share / total));
    };
    {
        BlasOnOneThread one;
        run_parts(P, part);
    }
    double J = 0;
    for (int k = 0; k < P; ++k) J += Jk[k];
    for (int k = 1; k < P; ++k) {  // the sum of the parts' gradients, in part order
        const T* gk = ws.part_grads.data() + (k - 1) * n;
        for (idx i = 0; i < n; ++i) grads_[i] += gk[i];
    }
    return J;
}

template <class T>
CMat<T> Model<T>::dense_targets(Workspace<T>& ws, const Target<T>& Y, idx d) {
    if (!Y.is_index()) return Y.dense;
    idx m = n_out();
    std::fill(ws.Yb, ws.Yb + m * d, T(0));
    for (idx j = 0; j < d; ++j) ws.Yb[j * m + Y.index[j * Y.index_stride]] = T(1);
    return {ws.Yb, m, d, 1, m};
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
        J += add_penalty();  // the penalty comes with its gradient
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
    T* state[3] = {opt.v, opt.m, opt.u};  // the set_* bindings leave unused ones null
    if (opt.kind == OptState<T>::sgd && opt.momentum == 0) state[0] = nullptr;
    undo_.resize(size_t(4 * n));
    if (opt.kind == OptState<T>::adam) {  // adam_update saves p, m, v itself, in its own pass
        state[0] = opt.m;
        state[1] = opt.v;
        state[2] = nullptr;
    } else {
        std::memcpy(undo_.data(), params_, size_t(n) * sizeof(T));
        for (int s = 0; s < 3; ++s)
            if (state[s]) std::memcpy(undo_.data() + (s + 1) * n, state[s], size_t(n) * sizeof(T));
    }
    bool ok = true;
    if (opt.kind == OptState<T>::sgd) {
        ok = sgd_update<T>(params_, grads_, opt.v, n, opt.lr, opt.momentum, opt.nesterov);
    } else if (opt.kind == OptState<T>::adam) {
        long long t = ++*opt.t;
        ok = adam_update<T>(params_, grads_, opt.m, opt.v, n, t, opt.lr, opt.beta1, opt.beta2, opt.eps,
                            opt.weight_decay, undo_.data());
        if (!ok) --*opt.t;
    } else if (opt.kind == OptState<T>::rmsprop) {
        ok = rmsprop_update<T>(params_, grads_, opt.v, opt.m, opt.u, n, opt.lr, opt.alpha, opt.eps,
                               opt.weight_decay, opt.momentum, opt.centered);
    } else if (opt.kind == OptState<T>::rprop) {
        ok = rprop_update<T>(params_, grads_, opt.v, opt.m, n, opt.eta_minus, opt.eta_plus, opt.step_min,
                             opt.step_max);
    }
    if (!ok) {
        std::memcpy(params_, undo_.data(), size_t(n) * sizeof(T));
        for (int s = 0; s < 3; ++s)
            if (state[s]) std::memcpy(state[s], undo_.data() + (s + 1) * n, size_t(n) * sizeof(T));
    }
    return ok;
}

template <class T>
double Model<T>::step_on(Workspace<T>& ws, CMat<T> X, CMat<T> Y, Loss loss, const OptState<T>& opt, idx d,
                         bool* applied, const double* s) {
    double J = data_grads(ws, X, Y, loss, d, s, true);
    J += add_penalty();  // the penalty comes with its gradient
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
static void count_correct(CMat<T> Yhat, CMat<T> Y, const int64_t* index, bool argmax, EpochStats& st,
                          const double* s = nullptr) {
    idx m = Yhat.rows, d = Yhat.cols;
    if (s) {
        for (idx j = 0; j < d; ++j) {
            double r = 0;
            if (argmax) {
                idx best = 0, truth = 0;
                for (idx i = 1; i < m; ++i) if (Yhat(i, j) > Yhat(best, j)) best = i;
                if (index) truth = idx(index[j]);
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
                truth = idx(index[j]);
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
    for (idx k = first; k < first + count; ++k) {
        idx s = k * bs, nb = std::min(N, s + bs) - s;
        if (nb <= 0) break;
        CMat<T> Xb;
        Target<T> Yb;
        if (order) {  // gather the shuffled examples into the workspace (F-ordered columns)
            for (idx j = 0; j < nb; ++j) {
                idx c = idx(order[s + j]);
                T* dst = ws->Xb + j * n;
                if (mean) for (idx i = 0; i < n; ++i) dst[i] = T((double(X(i, c)) - mean[i]) * inv_scale[i]);
                else if (X.rs == 1 && n >= 64) std::memcpy(dst, X.p + c * X.cs, size_t(n) * sizeof(T));
                else for (idx i = 0; i < n; ++i) dst[i] = X(i, c);  // short columns: no libc call
                if (sw) ws->Sb[j] = sw[c];
                if (Y.is_index()) {
                    ws->Ib[j] = Y.index[c * Y.index_stride];
                } else {
                    T* ydst = ws->Yb + j * m;
                    for (idx i = 0; i < m; ++i) ydst[i] = Y.dense(i, c);
                }
            }
            Xb = {ws->Xb, n, nb, 1, n};
            if (Y.is_index()) Yb.index = ws->Ib.data();
            else Yb.dense = {ws->Yb, m, nb, 1, m};
        } else {  // in order: the batch is a view of X, nothing is copied (unless standardised)
            Xb = {X.p + s * X.cs, n, nb, X.rs, X.cs};
            if (mean) {
                for (idx j = 0; j < nb; ++j)
                    for (idx i = 0; i < n; ++i)
                        ws->Xb[i + j * n] = T((double(X(i, s + j)) - mean[i]) * inv_scale[i]);
                Xb = {ws->Xb, n, nb, 1, n};
            }
            if (Y.is_index()) { Yb.index = Y.index + s * Y.index_stride; Yb.index_stride = Y.index_stride; }
            else Yb.dense = {Y.dense.p + s * Y.dense.cs, m, nb, Y.dense.rs, Y.dense.cs};
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
        CMat<T> Yd = dense_targets(*ws, Yb, nb);
        bool applied;
        double J;
        {  // not around stop(), which runs Python's signal handlers
            FlushSubnormals fz;
            J = step_on(*ws, Xb, Yd, loss, opt, nb, &applied, sb);
        }
        if (!applied) {
            st.diverged = true;
            st.bad_loss = J;
            break;
        }
        st.loss_sum += J * size;
        st.seen += size;
        st.batches += 1;
        if (want_correct) {
            const int64_t* index = nullptr;
            std::vector<int64_t> tmp;
            if (Yb.is_index()) {
                if (Yb.index_stride == 1) index = Yb.index;
                else { tmp.resize(size_t(nb)); for (idx j = 0; j < nb; ++j) tmp[j] = Yb.index[j * Yb.index_stride]; index = tmp.data(); }
            }
            count_correct<T>(act_view(*ws, idx(acts_.size()) - 1, nb), Yd, index, argmax, st, sb);
        }
        if (stop && stop()) break;
    }
    release(std::move(ws));
    return st;
}

template class Model<float>;
template class Model<double>;

}  // namespace pynn
