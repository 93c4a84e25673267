// The fused whole-network path (see model.hpp). Every numeric step is one of the kernels of
// dense.cpp / activations.cpp / losses.cpp / optim.cpp, in the order network.py calls them.
#include "model.hpp"

#include <algorithm>
#include <cstring>

namespace pynn {

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
    if (ws->cap < d) {
        idx L = idx(acts_.size()), m = n_out(), hmax = *std::max_element(sizes_.begin() + 1, sizes_.end());
        idx total = 0;
        for (idx l = 0; l < L; ++l) total += sizes_[l + 1] * d;
        total += m * d + 2 * hmax * d + n_in() * d + m * d;
        ws->buf.assign(size_t(total), T(0));
        T* p = ws->buf.data();
        ws->A.resize(size_t(L));
        for (idx l = 0; l < L; ++l) { ws->A[l] = p; p += sizes_[l + 1] * d; }
        ws->Z_out = p; p += m * d;
        ws->dA[0] = p; p += hmax * d;
        ws->dA[1] = p; p += hmax * d;
        ws->Xb = p; p += n_in() * d;
        ws->Yb = p;
        ws->Ib.assign(size_t(d), 0);
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
void Model<T>::forward_train(Workspace<T>& ws, CMat<T> X, idx d) {
    idx L = idx(acts_.size());
    CMat<T> A = X;
    for (idx l = 0; l < L; ++l) {
        Mat<T> Al = act_view(ws, l, d);
        Mat<T> Z = l == L - 1 ? Mat<T>{ws.Z_out, n_out(), d, 1, n_out()} : Al;
        layer_forward<T>(W_[l], A, b_[l], acts_[l], Z, Al);
        A = Al;
    }
}

static bool canonical(Act a, Loss l) {
    return (a == Act::linear && l == Loss::mse) || (a == Act::sigmoid && l == Loss::bce) ||
           (a == Act::softmax && l == Loss::cross_entropy);
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

// J of the batch plus the weight penalty.
template <class T>
double Model<T>::loss_value(Workspace<T>& ws, CMat<T> Y, Loss loss, idx d) {
    Act out = acts_.back();
    CMat<T> Z{ws.Z_out, n_out(), d, 1, n_out()};
    double J;
    if (out == Act::sigmoid && loss == Loss::bce) J = bce_logits_forward<T>(Z, Y);
    else if (out == Act::softmax && loss == Loss::cross_entropy) J = cross_entropy_logits_forward<T>(Z, Y);
    else J = loss_forward<T>(loss, act_view(ws, idx(acts_.size()) - 1, d), Y);
    return l1_.empty() ? J : J + penalty();
}

template <class T>
void Model<T>::backward(Workspace<T>& ws, CMat<T> X, CMat<T> Y, Loss loss, idx d) {
    idx L = idx(acts_.size());
    auto dA = [&](idx l) { return Mat<T>{ws.dA[l % 2], sizes_[l + 1], d, 1, sizes_[l + 1]}; };
    auto A_prev = [&](idx l) { return l > 0 ? CMat<T>(act_view(ws, l - 1, d)) : X; };
    CMat<T> Yhat = act_view(ws, L - 1, d);
    idx top;
    if (canonical(acts_.back(), loss)) {  // dZ(L) = (Yhat - Y) / d, then the dense backward
        Mat<T> dZ = dA(L - 1);
        output_backward<T>(Yhat, Y, dZ);
        Mat<T> dAp = L > 1 ? dA(L - 2) : Mat<T>{};
        dense_backward<T>(dZ, A_prev(L - 1), W_[L - 1], dW_[L - 1], db_[L - 1], L > 1 ? &dAp : nullptr);
        top = L - 2;
    } else {
        loss_backward<T>(loss, Yhat, Y, dA(L - 1));
        top = L - 1;
    }
    for (idx l = top; l >= 0; --l) {
        Mat<T> dAl = dA(l), dAp = l > 0 ? dA(l - 1) : Mat<T>{};
        layer_backward<T>(dAl, act_view(ws, l, d), acts_[l], W_[l], A_prev(l), dAl, dW_[l], db_[l],
                          l > 0 ? &dAp : nullptr);
    }
    for (size_t l = 0; l < l1_.size(); ++l)  // the weight penalty's gradient
        if (l1_[l] != 0 || l2_[l] != 0)
            penalty_backward<T>(W_[l].p, W_[l].rows * W_[l].cols, l1_[l], l2_[l], dW_[l].p);
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
double Model<T>::loss(CMat<T> X, const Target<T>& Y, Loss loss, bool grads) {
    idx d = X.cols;
    auto ws = acquire(d);
    CMat<T> Yd = dense_targets(*ws, Y, d);
    forward_train(*ws, X, d);
    double J = loss_value(*ws, Yd, loss, d);
    if (grads) backward(*ws, X, Yd, loss, d);
    release(std::move(ws));
    return J;
}

// Clip, then update; an update that would leave a weight or an optimizer state non-finite
// (an overflow from finite gradients) is taken back, so the network keeps its last finite
// weights. The copy it keeps costs one pass over the parameters (and state).
template <class T>
bool Model<T>::update(const OptState<T>& opt) {
    const idx n = n_params_;
    clip_gradient<T>(grads_, n, opt.clip_value, opt.clip_norm);
    T* state[2] = {opt.v, opt.kind == OptState<T>::adam ? opt.m : nullptr};
    if (opt.kind == OptState<T>::sgd && opt.momentum == 0) state[0] = nullptr;
    undo_.resize(size_t(3 * n));
    std::memcpy(undo_.data(), params_, size_t(n) * sizeof(T));
    for (int s = 0; s < 2; ++s)
        if (state[s]) std::memcpy(undo_.data() + (s + 1) * n, state[s], size_t(n) * sizeof(T));
    bool ok = true;
    if (opt.kind == OptState<T>::sgd) {
        ok = sgd_update<T>(params_, grads_, opt.v, n, opt.lr, opt.momentum, opt.nesterov);
    } else if (opt.kind == OptState<T>::adam) {
        long long t = ++*opt.t;
        ok = adam_update<T>(params_, grads_, opt.m, opt.v, n, t, opt.lr, opt.beta1, opt.beta2, opt.eps,
                            opt.weight_decay);
        if (!ok) --*opt.t;
    }
    if (!ok) {
        std::memcpy(params_, undo_.data(), size_t(n) * sizeof(T));
        for (int s = 0; s < 2; ++s)
            if (state[s]) std::memcpy(state[s], undo_.data() + (s + 1) * n, size_t(n) * sizeof(T));
    }
    return ok;
}

template <class T>
double Model<T>::step_on(Workspace<T>& ws, CMat<T> X, CMat<T> Y, Loss loss, const OptState<T>& opt, idx d,
                         bool* applied) {
    forward_train(ws, X, d);
    double J = loss_value(ws, Y, loss, d);
    backward(ws, X, Y, loss, d);
    // A step whose loss or gradient is not finite changes nothing.
    *applied = (J - J) == 0 && all_finite(grads_, n_params_) && update(opt);
    return J;
}

template <class T>
double Model<T>::train_step(CMat<T> X, const Target<T>& Y, Loss loss, const OptState<T>& opt, bool* applied) {
    idx d = X.cols;
    auto ws = acquire(d);
    CMat<T> Yd = dense_targets(*ws, Y, d);
    double J = step_on(*ws, X, Yd, loss, opt, d, applied);
    release(std::move(ws));
    return J;
}

// (right, judged) for one batch: softmax outputs by argmax per example, others by thresholding
// each output at 0.5 — as training.correct_count does.
template <class T>
static void count_correct(CMat<T> Yhat, CMat<T> Y, const int64_t* index, bool argmax, EpochStats& st) {
    idx m = Yhat.rows, d = Yhat.cols;
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
                                 const std::function<bool()>& stop) {
    EpochStats st;
    idx N = X.cols, n = n_in(), m = n_out();
    auto ws = acquire(bs);
    bool argmax = loss == Loss::cross_entropy && m > 1;
    for (idx k = first; k < first + count; ++k) {
        idx s = k * bs, nb = std::min(N, s + bs) - s;
        if (nb <= 0) break;
        CMat<T> Xb;
        Target<T> Yb;
        if (order) {  // gather the shuffled examples into the workspace (F-ordered columns)
            for (idx j = 0; j < nb; ++j) {
                idx c = idx(order[s + j]);
                T* dst = ws->Xb + j * n;
                if (X.rs == 1 && n >= 64) std::memcpy(dst, X.p + c * X.cs, size_t(n) * sizeof(T));
                else for (idx i = 0; i < n; ++i) dst[i] = X(i, c);  // short columns: no libc call
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
        } else {  // in order: the batch is a view of X, nothing is copied
            Xb = {X.p + s * X.cs, n, nb, X.rs, X.cs};
            if (Y.is_index()) { Yb.index = Y.index + s * Y.index_stride; Yb.index_stride = Y.index_stride; }
            else Yb.dense = {Y.dense.p + s * Y.dense.cs, m, nb, Y.dense.rs, Y.dense.cs};
        }
        CMat<T> Yd = dense_targets(*ws, Yb, nb);
        bool applied;
        double J = step_on(*ws, Xb, Yd, loss, opt, nb, &applied);
        if (!applied) {
            st.diverged = true;
            st.bad_loss = J;
            break;
        }
        st.loss_sum += J * double(nb);
        st.seen += nb;
        st.batches += 1;
        if (want_correct) {
            const int64_t* index = nullptr;
            std::vector<int64_t> tmp;
            if (Yb.is_index()) {
                if (Yb.index_stride == 1) index = Yb.index;
                else { tmp.resize(size_t(nb)); for (idx j = 0; j < nb; ++j) tmp[j] = Yb.index[j * Yb.index_stride]; index = tmp.data(); }
            }
            count_correct<T>(act_view(*ws, idx(acts_.size()) - 1, nb), Yd, index, argmax, st);
        }
        if (stop && stop()) break;
    }
    release(std::move(ws));
    return st;
}

template class Model<float>;
template class Model<double>;

}  // namespace pynn
