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
#include "fpmode.hpp"

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

// Waits for done() by spinning, yielding the core once the wait outlasts SPIN (a thread it
// waits for may have been descheduled on a busy machine).
template <class F>
void spin_until(F&& done) {
    auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; !done(); ++k) {
        if (k % 64 == 63 && std::chrono::steady_clock::now() - t0 > SPIN) std::this_thread::yield();
        else cpu_relax();
    }
}

std::atomic<long long> g_min_cols{32}, g_min_macs{1 << 20};

// Two kinds of run. OpenBLAS's jobs wait for each other, so each needs a thread of its own: job
// i + 1 goes to worker i (`fixed`). The parts of a step don't, so any thread may take any of
// them (`claimed`): the caller and each worker take the next part not yet taken, phase by phase,
// and the caller returns once every part of the last phase is done, without waiting for the
// workers. On a machine where another process shares the worker's core and the worker is
// descheduled for a time slice (milliseconds), the caller then runs the parts itself instead of
// waiting: with parts handed out by thread, a two-thread step ran 2.4x slower than one thread
// there. A part gives the same result on whichever thread runs it.
//
// Claim and done counters carry the run's number (mod 2^32) in their high 32 bits, so a worker
// that comes late to a run that has ended finds nothing to take, and never touches the ended
// run's work.
constexpr int MAX_PHASES = 4;
constexpr uint64_t tag(uint64_t run) { return (run & 0xffffffffu) << 32; }
constexpr bool of_run(uint64_t word, uint64_t run) { return (word >> 32) == (run & 0xffffffffu); }
constexpr int low(uint64_t word) { return int(word & 0xffffffffu); }
static_assert(of_run(tag(0x1234567890ull) + 5, 0x1234567890ull), "the run's number survives its wrap");

class Team {
   public:
    // Runs f(1..n-1) on workers (growing the team to n-1 of them) and f(0) here.
    void run_fixed(int n, FnRef<void(int)> f) {
        grow(n - 1);
        pending_.store(int(workers_.size()), std::memory_order_relaxed);
        publish(/*claimed=*/false, &f, n, 0);
        f(0);
        spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; });
    }

    // phases[p](k) for parts k < n, phase by phase, by whichever thread takes part k.
    void run_claimed(int n, const FnRef<void(int)>* phases, int count) {
        grow(n - 1);
        const uint64_t r = gen_.load(std::memory_order_relaxed) + 1;
        for (int p = 0; p < count; ++p) {  // published with the run (gen_'s release)
            claim_[p].store(tag(r), std::memory_order_relaxed);
            done_[p].store(tag(r), std::memory_order_relaxed);
        }
        publish(/*claimed=*/true, phases, n, count);
        take_parts({r, true, phases, n, count});
    }

    // For tests: the next run is numbered `skip` later (to reach the counters' wrap at 2^32).
    void skip_runs(uint64_t skip) { publish(/*claimed=*/true, nullptr, 0, 0, skip); }

    std::mutex busy;  // one run at a time

   private:
    // What a run is, as the workers read it: written only by the caller that holds `busy`,
    // under a sequence lock (odd while being written), since a late worker may read it while
    // the next run's is being written.
    struct Desc {
        uint64_t run;
        bool claimed;
        const FnRef<void(int)>* fn;
        int n, count;
    };
    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::atomic<uint64_t> gen_{0};  // the number of the latest run
    std::atomic<int> pending_{0}, sleeping_{0};
    std::atomic<uint64_t> seq_{0}, run_{0};
    std::atomic<bool> claimed_{false};
    std::atomic<const FnRef<void(int)>*> fn_{nullptr};
    std::atomic<int> parts_{0}, phases_{0};
    std::atomic<uint64_t> claim_[MAX_PHASES], done_[MAX_PHASES];

    void grow(int n) {
        while (int(workers_.size()) < n) {
            int i = int(workers_.size());
            workers_.emplace_back([this, i, seen = gen_.load()] { work(i, seen); });
        }
    }

    void publish(bool claimed, const FnRef<void(int)>* fn, int n, int count, uint64_t skip = 0) {
        const uint64_t r = gen_.load(std::memory_order_relaxed) + 1 + skip;
        // a reader that sees any field stored here also sees seq_ odd (release stores), and
        // reads seq_ again after the fields (acquire loads): then it retries
        seq_.fetch_add(1, std::memory_order_relaxed);  // odd: being written
        run_.store(r, std::memory_order_release);
        claimed_.store(claimed, std::memory_order_release);
        fn_.store(fn, std::memory_order_release);
        parts_.store(n, std::memory_order_release);
        phases_.store(count, std::memory_order_release);
        seq_.fetch_add(1, std::memory_order_release);  // even: complete
        {
            std::lock_guard<std::mutex> lock(mu_);  // under the lock: no sleeping worker misses it
            gen_.store(r, std::memory_order_release);
        }
        if (sleeping_.load()) cv_.notify_all();
    }

    Desc read() const {
        for (;;) {
            uint64_t s1 = seq_.load(std::memory_order_acquire);
            if (s1 & 1) { cpu_relax(); continue; }
            Desc d{run_.load(std::memory_order_acquire), claimed_.load(std::memory_order_acquire),
                   fn_.load(std::memory_order_acquire), parts_.load(std::memory_order_acquire),
                   phases_.load(std::memory_order_acquire)};
            if (seq_.load(std::memory_order_relaxed) == s1) return d;
        }
    }

    // Takes parts of run d.run until none is left, phase by phase; returns at once if that run
    // has ended (a late worker). A phase starts once every part of the one before is done.
    void take_parts(const Desc& d) {
        for (int p = 0; p < d.count; ++p) {
            for (;;) {
                uint64_t w = claim_[p].load(std::memory_order_acquire);
                if (!of_run(w, d.run)) return;
                if (low(w) >= d.n) break;
                if (claim_[p].compare_exchange_weak(w, w + 1, std::memory_order_acq_rel)) {
                    d.fn[p](low(w));
                    done_[p].fetch_add(1, std::memory_order_acq_rel);
                }
            }
            spin_until([&] {  // a part still running elsewhere: wait for it
                uint64_t w = done_[p].load(std::memory_order_acquire);
                return !of_run(w, d.run) || low(w) >= d.n;
            });
        }
    }

    void work(int i, uint64_t seen) {
        for (;;) {
            auto t0 = std::chrono::steady_clock::now();
            for (int k = 0; gen_.load(std::memory_order_acquire) == seen; ++k) {
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
            // the latest run (a claimed run may have ended, and others followed, meanwhile; a
            // fixed one waits for every worker, so none is ever skipped)
            const Desc d = read();
            seen = d.run;
            if (d.claimed) {
                take_parts(d);
                continue;
            }
            if (i + 1 < d.n) (*d.fn)(i + 1);
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

void run_parts(int n, FnRef<void(int)> f) { run_phases(n, &f, 1); }

void run_phases(int n, const FnRef<void(int)>* phases, int count) {
    if (n <= 1) {
        for (int p = 0; p < count && n == 1; ++p) phases[p](0);
        return;
    }
    State& s = state();
    std::unique_lock<std::mutex> lock(s.team.busy, std::try_to_lock);
    if (!lock.owns_lock() || count > MAX_PHASES || n > 0xffff) {  // the same parts, in turn
        for (int p = 0; p < count; ++p)
            for (int k = 0; k < n; ++k) phases[p](k);
        return;
    }
    s.team.run_claimed(n, phases, count);
}

namespace {
// OpenBLAS's jobs must run at the same time (the level-3 ones wait for each other's packed
// panels), so each gets its own thread: the team's when it is free, else threads made for the
// call (another thread holds the team: rare, and slower, never wrong). Each runs in the caller's
// floating-point mode, as OpenBLAS's own pool does.
void blas_jobs(int, openblas_dojob_callback dojob, int numjobs, size_t elsize, void* jobdata,
                          int dojob_data) {
    const unsigned mode = fp_mode();
    auto job = [&](int i) {
        WithFpMode in_callers_mode(mode);
        dojob(i, static_cast<char*>(jobdata) + size_t(i) * elsize, dojob_data);
    };
    if (numjobs <= 1) {
        if (numjobs == 1) job(0);
        return;
    }
    State& s = state();
    std::unique_lock<std::mutex> lock(s.team.busy, std::try_to_lock);
    if (lock.owns_lock()) return s.team.run_fixed(numjobs, job);
    std::vector<std::thread> extra;
    for (int i = 1; i < numjobs; ++i) extra.emplace_back(job, i);
    job(0);
    for (auto& t : extra) t.join();
}
}  // namespace

void skip_team_runs(unsigned long long n) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.team.busy);
    s.team.skip_runs(n);
}

void install_blas_threads() { scipy_openblas_set_threads_callback_function(&blas_jobs); }

Grain parallel_grain() { return {g_min_cols.load(), g_min_macs.load()}; }

void set_parallel_grain(Grain g) {
    g_min_cols.store(g.min_cols < 1 ? 1 : g.min_cols);
    g_min_macs.store(g.min_macs < 0 ? 0 : g.min_macs);
}

}  // namespace pynn
