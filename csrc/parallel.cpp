// pynn's thread team (see parallel.hpp): a few workers that wait for parts of a step, spinning
// briefly between steps (a step follows the last within microseconds in a training loop) and
// sleeping on a condition variable otherwise, so an idle team costs no CPU.
//
// The team also runs OpenBLAS's own parallel jobs (its threads callback), so pynn's OpenBLAS never
// wakes a pool of its own: an OpenBLAS worker keeps spinning ~0.1 s after each threaded product
// (sched_yield in a loop), and on two cores that halved the speed of the team's worker sharing
// its core — in a training loop where a validation pass or a health record between epochs makes
// one threaded product, it never stopped. Waking a sleeping thread is no answer either: on this
// VM a condition-variable wake-up took ~80 µs, as long as a whole split step.
#include "parallel.hpp"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "blas.hpp"

namespace pynn {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__)
    _mm_pause();
#else
    std::this_thread::yield();
#endif
}

// How long a worker spins for the next part before it sleeps, and how long the caller spins
// for the workers before it yields: a training loop's next step comes within this.
constexpr auto SPIN = std::chrono::microseconds(200);

std::atomic<long long> g_min_cols{32}, g_min_macs{1 << 20};

// A barrier for the n threads of one team run: all of them are running (the run handed each a
// part), so the wait spins, and yields only if it lasts (a descheduled thread on a busy machine).
class SpinBarrier {
   public:
    void reset(int n) { n_ = n; }
    void wait() {
        const uint64_t g = gen_.load(std::memory_order_acquire);
        if (count_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
            count_.store(0, std::memory_order_relaxed);
            gen_.fetch_add(1, std::memory_order_release);
            return;
        }
        for (int k = 0; gen_.load(std::memory_order_acquire) == g; ++k) {
            if (k < 4096) cpu_relax();
            else std::this_thread::yield();
        }
    }

   private:
    int n_ = 1;
    std::atomic<int> count_{0};
    std::atomic<uint64_t> gen_{0};
};

class Team {
   public:
    // Runs f(1..n-1) on workers (growing the team to n-1 of them) and f(0) here.
    void run(int n, const std::function<void(int)>& f) {
        while (int(workers_.size()) < n - 1) {
            int i = int(workers_.size());
            workers_.emplace_back([this, i, seen = gen_.load()] { work(i, seen); });
        }
        job_ = &f;
        parts_ = n;
        pending_.store(int(workers_.size()), std::memory_order_relaxed);
        {
            std::lock_guard<std::mutex> lock(mu_);  // under the lock: no sleeping worker misses it
            gen_.fetch_add(1, std::memory_order_release);
        }
        if (sleeping_.load()) cv_.notify_all();
        f(0);
        auto t0 = std::chrono::steady_clock::now();
        for (int k = 0; pending_.load(std::memory_order_acquire) != 0; ++k) {
            if (k % 64 == 63 && std::chrono::steady_clock::now() - t0 > SPIN) std::this_thread::yield();
            else cpu_relax();
        }
    }
    std::mutex busy;  // one run at a time
    SpinBarrier barrier;  // between the phases of run_phases

   private:
    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::atomic<uint64_t> gen_{0};
    std::atomic<int> pending_{0}, sleeping_{0};
    const std::function<void(int)>* job_ = nullptr;
    int parts_ = 0;

    void work(int i, uint64_t seen) {
        for (;;) {
            uint64_t g;
            auto t0 = std::chrono::steady_clock::now();
            for (int k = 0; (g = gen_.load(std::memory_order_acquire)) == seen; ++k) {
                if (k % 64 != 63 || std::chrono::steady_clock::now() - t0 < SPIN) {
                    cpu_relax();
                    continue;
                }
                std::unique_lock<std::mutex> lock(mu_);
                ++sleeping_;
                cv_.wait(lock, [&] { return gen_.load() != seen; });
                --sleeping_;
                t0 = std::chrono::steady_clock::now();
            }
            seen = g;
            if (i + 1 < parts_) (*job_)(i + 1);
            pending_.fetch_sub(1, std::memory_order_release);
        }
    }
};

// Process-wide state, on the heap and never destroyed: workers outlive static destructors at
// exit, and a forked child (which has none of the parent's threads) starts a new one.
struct State {
    Team team;
    std::mutex blas_mu;
    int blas_depth = 0, blas_saved = 1;
};
std::atomic<State*> g_state{nullptr};
std::once_flag g_atfork;

State& state() {
    std::call_once(g_atfork, [] {
        // the child of a fork has only the forking thread: forget the parent's team (leaked,
        // its workers don't exist here) rather than wait for workers that will never answer
        pthread_atfork(nullptr, nullptr, [] { g_state.store(nullptr); });
    });
    State* s = g_state.load();
    if (!s) {
        State* fresh = new State();
        if (g_state.compare_exchange_strong(s, fresh)) s = fresh;
        else delete fresh;
    }
    return *s;
}

}  // namespace

// The count is OpenBLAS's (so threadpoolctl reports and limits it); while a split step holds it
// at 1, the count it will go back to.
int num_threads() {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.blas_mu);
    return s.blas_depth > 0 ? s.blas_saved : blas_get_num_threads();
}

void set_num_threads(int n) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.blas_mu);
    if (s.blas_depth > 0) s.blas_saved = n;  // a split step is running: applies when it ends
    else blas_set_num_threads(n);
}

BlasOnOneThread::BlasOnOneThread() {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.blas_mu);
    if (s.blas_depth++ == 0) {
        s.blas_saved = blas_get_num_threads();
        if (s.blas_saved != 1) blas_set_num_threads(1);
    }
}

BlasOnOneThread::~BlasOnOneThread() {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.blas_mu);
    if (--s.blas_depth == 0 && s.blas_saved != 1) blas_set_num_threads(s.blas_saved);
}

void run_parts(int n, const std::function<void(int)>& f) {
    if (n <= 1) {
        if (n == 1) f(0);
        return;
    }
    State& s = state();
    std::unique_lock<std::mutex> lock(s.team.busy, std::try_to_lock);
    if (!lock.owns_lock()) {  // another network's step has the team: the same parts, in turn
        for (int k = 0; k < n; ++k) f(k);
        return;
    }
    s.team.run(n, f);
}

namespace {
// OpenBLAS's jobs must run at the same time (the level-3 ones wait for each other's packed
// panels), so each gets its own thread: the team's when it is free, else threads made for the
// call (another thread holds the team: rare, and slower, never wrong). Each runs in the caller's
// floating-point mode, as OpenBLAS's own pool does.
void blas_jobs(int, openblas_dojob_callback dojob, int numjobs, size_t elsize, void* jobdata,
                          int dojob_data) {
#if defined(__x86_64__)
    const unsigned csr = _mm_getcsr();
#endif
    auto job = [&](int i) {
#if defined(__x86_64__)
        const unsigned own = _mm_getcsr();
        _mm_setcsr(csr);
#endif
        dojob(i, static_cast<char*>(jobdata) + size_t(i) * elsize, dojob_data);
#if defined(__x86_64__)
        _mm_setcsr(own);
#endif
    };
    if (numjobs <= 1) {
        if (numjobs == 1) job(0);
        return;
    }
    State& s = state();
    std::unique_lock<std::mutex> lock(s.team.busy, std::try_to_lock);
    if (lock.owns_lock()) return s.team.run(numjobs, job);
    std::vector<std::thread> extra;
    for (int i = 1; i < numjobs; ++i) extra.emplace_back(job, i);
    job(0);
    for (auto& t : extra) t.join();
}
}  // namespace

void install_blas_threads() { scipy_openblas_set_threads_callback_function(&blas_jobs); }

void run_phases(int n, const std::function<void(int)>* phases, int count) {
    if (count == 1) return run_parts(n, phases[0]);
    if (n <= 1) {
        for (int p = 0; p < count; ++p)
            if (n == 1) phases[p](0);
        return;
    }
    State& s = state();
    std::unique_lock<std::mutex> lock(s.team.busy, std::try_to_lock);
    if (!lock.owns_lock()) {
        for (int p = 0; p < count; ++p)
            for (int k = 0; k < n; ++k) phases[p](k);
        return;
    }
    s.team.barrier.reset(n);
    s.team.run(n, [&](int k) {
        for (int p = 0; p < count; ++p) {
            if (p > 0) s.team.barrier.wait();
            phases[p](k);
        }
    });
}

Grain parallel_grain() { return {g_min_cols.load(), g_min_macs.load()}; }

void set_parallel_grain(Grain g) {
    g_min_cols.store(g.min_cols < 1 ? 1 : g.min_cols);
    g_min_macs.store(g.min_macs < 0 ? 0 : g.min_macs);
}

}  // namespace pynn
