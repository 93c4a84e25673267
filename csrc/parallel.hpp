// Data-parallel training steps on pynn's own small thread team.
//
// Why not OpenBLAS's threads: at the shapes of MLP training (a few hundred units, batches of a
// few hundred) OpenBLAS splits each product over its pool and synchronises per call; on two
// cores that ran scikit-learn's default digits set-up slower than one thread. A step split by
// columns (examples) instead needs two synchronisations per step, not several per product: each
// thread runs the whole forward and backward pass on its share of the batch with single-threaded
// products, and the shares' gradients are summed.
//
// Results depend on the number of parts, never on which thread ran a part or when: a part is the
// same computation wherever it runs, and when the team is busy (another network training in
// another thread) the parts run one after another on the calling thread instead.
#pragma once
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

namespace pynn {

// A reference to a callable, owning nothing: what the team's calls take instead of
// std::function, which heap-allocates a lambda that captures more than two references — every
// training step would allocate. The callable must outlive the call it is handed to.
template <class Sig>
class FnRef;
template <class R, class... A>
class FnRef<R(A...)> {
   public:
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FnRef>>>
    FnRef(F&& f)  // NOLINT: implicit, like std::function's
        : obj_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
          call_([](void* o, A... a) -> R { return (*static_cast<std::remove_reference_t<F>*>(o))(a...); }) {}
    R operator()(A... a) const { return call_(obj_, a...); }

   private:
    void* obj_;
    R (*call_)(void*, A...);
};

// pynn's thread count (pynn.set_num_threads): the compiled core's OpenBLAS count, and the parts
// a large training step is split into.
int num_threads();
void set_num_threads(int n);

// Hands OpenBLAS's parallel jobs to the team (called once, when the module loads).
void install_blas_threads();

// For tests: numbers the team's next run n later, so a test reaches the wrap of its counters.
void skip_team_runs(unsigned long long n);

// While one lives, pynn's OpenBLAS runs every call on its calling thread (count 1), so that
// products called from several threads neither oversubscribe the cores nor round differently
// with the thread count. Holders may nest and overlap; the last one out puts the count back.
class BlasOnOneThread {
   public:
    BlasOnOneThread();
    ~BlasOnOneThread();
    BlasOnOneThread(const BlasOnOneThread&) = delete;
    BlasOnOneThread& operator=(const BlasOnOneThread&) = delete;
};

// Phases of parts: phases[0](k) for every part k < n, then phases[1](k) for every k, and so on,
// returning when all are done. On the team the calling thread and the workers each take the
// next part not yet taken, and a phase starts once every part of the one before is done; when
// the team is busy the calling thread runs every phase of every part in turn. Either way a phase
// sees everything every earlier phase wrote. The phases must not throw; call this inside a
// BlasOnOneThread.
void run_phases(int n, const FnRef<void(int)>* phases, int count);
// One phase.
void run_parts(int n, FnRef<void(int)> f);

// The grain below which a step is not split (tests lower it to split small networks):
// every part gets at least min_cols examples and min_macs multiply-adds of the step's products.
struct Grain {
    long long min_cols, min_macs;
};
Grain parallel_grain();
void set_parallel_grain(Grain g);

}  // namespace pynn
