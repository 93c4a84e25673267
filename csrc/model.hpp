// The fused path: a whole network's forward, loss, backward and optimizer update — and whole
// epochs of them — in one call with the GIL released, on workspaces allocated once and reused.
// It calls the same kernels as the per-kernel path (layer_forward, layer_backward, ...), so it
// computes exactly what the Python loop over kernels computes; what it removes is the Python
// between them, per-step allocation and, for tiny layers, the BLAS call overhead.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#include "kernels.hpp"
#include "parallel.hpp"

namespace pynn {

// Optimizer settings and state pointers (the state arrays belong to the Python optimizer).
template <class T>
struct OptState {
    enum Kind { none, sgd, adam, rmsprop, rprop } kind = none;
    double lr = 0, momentum = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
    double alpha = 0;                                         // RMSprop
    double eta_minus = 0, eta_plus = 0, step_min = 0, step_max = 0;  // Rprop
    double clip_value = 0, clip_norm = 0;  // gradient clipping before the update; 0 = off
    bool nesterov = false, centered = false;
    // State arrays of n values; null where the settings need none.
    T* v = nullptr;        // SGD velocity, Adam and RMSprop second moment, Rprop previous gradient
    T* m = nullptr;        // Adam first moment, centered RMSprop mean gradient, Rprop step sizes
    T* u = nullptr;        // RMSprop momentum buffer
    int64_t* t = nullptr;  // Adam step count (1-element array, incremented in place)
};

// Targets: dense (m, d) values, or class indices (d,) for cross-entropy.
template <class T>
struct Target {
    CMat<T> dense{nullptr, 0, 0, 0, 0};
    const int64_t* index = nullptr;
    idx index_stride = 1;
    bool is_index() const { return index != nullptr; }
};

// Buffers for batches of up to `cap` examples, all F-ordered (h, d) with ld = h.
template <class T>
struct Workspace {
    idx cap = 0;
    std::vector<T> buf;
    std::vector<T*> A;  // A[l]: (h_l, cap)
    std::vector<T*> Z;  // Z[l]: (h_l, cap) for hidden layers whose backward reads Z (gelu), else null
    T* Z_out = nullptr; // output logits (m, cap)
    T* dA[2] = {nullptr, nullptr};
    T* Xb = nullptr;    // gathered input batch (n_in, cap)
    T* Yb = nullptr;    // gathered or one-hot targets (m, cap)
    std::vector<int64_t> Ib;  // gathered class indices
    std::vector<double> Sb;   // gathered sample weights
    std::vector<T> lse_buf;   // softmax output: each column's log Σ exp(z), from forward_train
    T* lse = nullptr;         // lse_buf, or in a part the whole batch's from its first column
    std::vector<T*> M, D;     // dropout: mask M[l] and masked output D[l] = A[l] * M[l] (h_l, cap)
    bool has_dropout = false;
    // A step split over threads (data_grads): part k sees columns [c0, c1) of these buffers
    // through parts[k], which owns no memory; parts k >= 1 write their gradients to part_grads.
    std::vector<Workspace> parts;
    std::vector<T> part_grads;
};

struct EpochStats {
    double loss_sum = 0;  // Σ over batches of J * batch size (or * Σ s_i, with sample weights)
    double seen = 0, right = 0, judged = 0;  // with weights: weighted counts
    int64_t batches = 0;
    bool diverged = false;  // a step's loss or gradient was not finite: it was not applied
    double bad_loss = 0;
};

template <class T>
class Model {
   public:
    Model(T* params, T* grads, std::vector<idx> sizes, std::vector<Act> acts);

    // Yhat (m, d) = the network's output for X (n_in, d). Thread-safe.
    void forward(CMat<T> X, Mat<T> out);
    // J for (X, Y); with grads=true also fills the gradient buffer. `s` (d,) are sample weights
    // or null: J = Σ s_i L_i / Σ s_i.
    double loss(CMat<T> X, const Target<T>& Y, Loss loss, bool grads, const double* s = nullptr);
    // One step: loss and grads, then the update unless J or a gradient is not finite (then
    // nothing changes and the returned J tells). Returns J before the update.
    double train_step(CMat<T> X, const Target<T>& Y, Loss loss, const OptState<T>& opt, bool* applied,
                      const double* s = nullptr);
    // Batches [first, first + count) of an epoch over X (n_in, N): batch k holds the examples
    // order[k*bs ...] (or k*bs... in order when order is null), gathered into the workspace.
    // `stop` is asked after every step and ends the run early when it answers true (Ctrl-C).
    // `s` (N,) are sample weights or null; a batch whose weights are all zero is skipped.
    // With opt.kind == none nothing is updated: the gradients of the last batch stay in the buffer.
    // `mean`, `inv_scale` (n_in,) standardise the inputs as they are gathered (in-order batches
    // are then gathered too): x' = T((double(x) - mean_i) * inv_scale_i); null: X as it is.
    // `n_order`: the length of `order`, which may pick a subset of X's columns (fit's training
    // part under validation_fraction, with no copy of X); the epoch is that many examples.
    EpochStats run_batches(CMat<T> X, const Target<T>& Y, const int64_t* order, idx first, idx count, idx bs,
                           Loss loss, const OptState<T>& opt, bool count_correct,
                           const std::function<bool()>& stop = {}, const double* s = nullptr,
                           const double* mean = nullptr, const double* inv_scale = nullptr, idx n_order = -1);

    // Inverted dropout on layer l's output with probability rates[l] in training steps (not in
    // forward or loss); the masks come from dropout_mask(seed, *step, l), and every training
    // step increments *step (a 1-element array owned by Python).
    void set_dropout(std::vector<double> rates, uint64_t seed, int64_t* step);

    double huber_delta = 1.0;  // Huber's delta for Loss::huber (the binding sets it with each call)

    // Per-layer weight penalties (l1, l2): J gains Σ_l l1 Σ|W| + l2/2 Σ W², dW gains
    // l1 sign(W) + l2 W. Biases are not penalised. Zero for every layer by default.
    void set_penalties(std::vector<double> l1, std::vector<double> l2);

    // The parts a training step (or gradient) on d examples is split into (parallel.hpp).
    int parts_for(idx d) const;

    idx n_in() const { return sizes_.front(); }
    idx n_layers() const { return idx(acts_.size()); }
    idx n_out() const { return sizes_.back(); }
    idx n_params() const { return n_params_; }
    bool softmax_out() const { return acts_.back() == Act::softmax; }

   private:
    std::vector<idx> sizes_;
    std::vector<Act> acts_;
    idx n_params_ = 0;
    T* params_;
    T* grads_;
    std::vector<Mat<T>> W_, b_, dW_, db_;
    std::mutex pool_mutex_;
    std::vector<std::unique_ptr<Workspace<T>>> pool_;
    std::vector<double> l1_, l2_;  // per layer; empty when no layer is penalised
    std::vector<T> undo_;  // what an update overwrites, to take back one whose result is not finite
    std::vector<double> rates_;
    uint64_t drop_seed_ = 0;
    int64_t* drop_step_ = nullptr;  // null: no dropout

    std::unique_ptr<Workspace<T>> acquire(idx d);
    void release(std::unique_ptr<Workspace<T>> ws);
    Mat<T> act_view(Workspace<T>& ws, idx l, idx d) const { return {ws.A[l], sizes_[l + 1], d, 1, sizes_[l + 1]}; }
    // What layer l's backward reads: Z (the kept Z[l], or Z_out for the output layer) for gelu, else A.
    Mat<T> backward_view(Workspace<T>& ws, idx l, idx d) const {
        if (!backward_from_z(acts_[l])) return act_view(ws, l, d);
        return {l == idx(acts_.size()) - 1 ? ws.Z_out : ws.Z[l], sizes_[l + 1], d, 1, sizes_[l + 1]};
    }
    void forward_train(Workspace<T>& ws, CMat<T> X, idx d, bool train = false);
    bool dropped(idx l, bool train) const { return train && drop_step_ && rates_[size_t(l)] > 0; }
    // with_penalty=false: the data term alone (add_penalty returns the penalty with its gradient)
    double loss_value(Workspace<T>& ws, CMat<T> Y, Loss loss, idx d, const double* s = nullptr,
                      bool with_penalty = true);
    double penalty() const;
    // The data term's gradient into the buffer g (n_params values), the output gradient scaled by
    // `scale` (a part's share of the batch); forward_train must have run on the same columns.
    void backward(Workspace<T>& ws, CMat<T> X, CMat<T> Y, Loss loss, idx d, const double* s, bool train, T* g,
                  T scale);
    // Adds the weight penalty's gradient to the gradient buffer for the parameters [o0, o1) of the
    // flat buffer; returns their penalty (0 without one).
    double add_penalty(idx o0, idx o1);
    void sum_part_grads(const Workspace<T>& ws, int P, idx o0, idx o1);
    void one_hot(Workspace<T>& ws, const Target<T>& Y, idx c0, idx c1);
    // Forward, the loss's data term J (returned) and its gradient in the gradient buffer, split
    // over parts_for(d) threads by columns when the batch is large enough.
    double data_grads(Workspace<T>& ws, CMat<T> X, CMat<T> Y, Loss loss, idx d, const double* s, bool train);
    // Part k of a batch split into P: columns [part_col(k), part_col(k + 1)).
    static idx part_col(idx k, idx d, int P) { return idx(double(k) * double(d) / double(P)); }
    void point_parts(Workspace<T>& ws, idx d, int P);
    double part_grads(Workspace<T>& ws, int k, int P, CMat<T> X, CMat<T> Y, Loss loss, idx d, const double* s,
                      double total, bool train);
    // run_batches' split step: gathering, gradient, penalty and update all on the team.
    double step_split(Workspace<T>& ws, CMat<T> X, const Target<T>& Y, FnRef<void(idx, idx)> gather,
                      Loss loss, const OptState<T>& opt, idx d, const double* s, int P, bool want_correct,
                      bool argmax, bool* applied, EpochStats& counted);
    CMat<T> dense_targets(Workspace<T>& ws, const Target<T>& Y, idx d);
    double step_on(Workspace<T>& ws, CMat<T> X, CMat<T> Y, Loss loss, const OptState<T>& opt, idx d, bool* applied,
                   const double* s = nullptr);
    bool update(const OptState<T>& opt);
    bool update_range(const OptState<T>& opt, long long t, idx o, idx nk);
    void undo_range(const OptState<T>& opt, idx o, idx nk);
};

// True if every element is finite (x - x is NaN exactly for NaN and ±inf); an integer AND
// reduction, so it vectorises.
template <class T>
inline bool all_finite(const T* p, idx n) {
    std::conditional_t<sizeof(T) == 4, int32_t, int64_t> ok = 1;  // as wide as T: vectorises
    for (idx k = 0; k < n; ++k) ok &= (p[k] - p[k]) == T(0);
    return ok;
}
template <class T>
inline bool all_finite(CMat<T> a) {
    if (idx n = flat_size(a)) return all_finite(a.p, n);
    int ok = 1;
    for_each_ij(a, [&](idx i, idx j) { ok &= (a(i, j) - a(i, j)) == T(0); });
    return ok;
}

}  // namespace pynn
