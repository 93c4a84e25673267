// A C++ driver for ThreadSanitizer (.ci/sanitize.sh): epochs of split training steps
// (Model::run_batches over pynn's thread team, csrc/parallel.hpp) on three networks, first one
// after another, then from three threads at once, where two of them find the team busy and run
// their parts in turn; then OpenBLAS's threaded products through the team, from two threads.
// It also counts operator new calls over further split epochs (a split step allocates nothing),
// and trains across the wrap of the team's 32-bit run numbers.
// Exit status 0 when the concurrent weights equal the serial ones bit for bit and no step
// allocated (TSan's own reports fail the run too).
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <thread>
#include <vector>
#include "model.hpp"
#include "parallel.hpp"
#include "blas.hpp"
using namespace pynn;
static std::atomic<long> n_new{0};
void* operator new(size_t n) {
    ++n_new;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
struct Net {
    std::vector<idx> sizes{64, 48, 10};
    std::vector<float> p, g, m, v; std::vector<int64_t> t{0};
    std::unique_ptr<Model<float>> model; OptState<float> opt;
    explicit Net(int seed) {
        idx n = 64 * 48 + 48 + 48 * 10 + 10;
        p.resize(n); g.resize(n); m.assign(n, 0); v.assign(n, 0);
        std::mt19937 r(seed); std::normal_distribution<float> nd(0, 0.1f);
        for (auto& x : p) x = nd(r);
        model = std::make_unique<Model<float>>(p.data(), g.data(), sizes, std::vector<Act>{Act::relu, Act::softmax});
        model->set_penalties({0, 0}, {1e-4, 1e-4});
        opt.kind = OptState<float>::adam; opt.lr = 1e-3; opt.beta1 = 0.9; opt.beta2 = 0.999; opt.eps = 1e-8;
        opt.m = m.data(); opt.v = v.data(); opt.t = t.data();
    }
};
int main() {
    install_blas_threads();
    set_parallel_grain({1, 0});
    set_num_threads(2);
    const idx N = 600;
    std::vector<float> X(64 * N); std::vector<int64_t> y(N), order(N);
    std::mt19937 r(0); std::uniform_real_distribution<float> u(0, 1);
    for (auto& x : X) x = u(r);
    for (idx j = 0; j < N; ++j) { y[j] = r() % 10; order[j] = (j * 7) % N; }
    CMat<float> Xv{X.data(), 64, N, 1, 64};
    Target<float> Y; Y.index = y.data();
    auto train = [&](Net& net) {
        for (int e = 0; e < 3; ++e)
            net.model->run_batches(Xv, Y, order.data(), 0, 6, 100, Loss::cross_entropy, net.opt, true, {}, nullptr, nullptr, nullptr, N);
    };
    std::vector<std::unique_ptr<Net>> serial, conc;
    for (int s = 0; s < 3; ++s) { serial.push_back(std::make_unique<Net>(s)); train(*serial.back()); }
    for (int s = 0; s < 3; ++s) conc.push_back(std::make_unique<Net>(s));
    std::vector<std::thread> th;
    for (int s = 0; s < 3; ++s) th.emplace_back([&, s] { train(*conc[s]); });
    for (auto& t : th) t.join();
    int same = 0;
    for (int s = 0; s < 3; ++s) same += serial[s]->p == conc[s]->p;
    printf("concurrent == serial: %d of 3\n", same);
    // threaded OpenBLAS products through the team, from two threads at once
    std::vector<float> A(300 * 400, 1.f), B(400 * 500, 1.f), C1(300 * 500), C2(300 * 500);
    auto prod = [&](std::vector<float>& C) { for (int k = 0; k < 5; ++k) scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 300, 500, 400, 1.f, A.data(), 400, B.data(), 500, 0.f, C.data(), 500); };
    std::thread t1([&] { prod(C1); }); prod(C2); t1.join();
    printf("products: %g %g (want 400)\n", C1[123], C2[4567]);
    // split epochs on a network whose workspace is warm allocate nothing
    const long before = n_new;
    for (int e = 0; e < 20; ++e)
        serial[0]->model->run_batches(Xv, Y, order.data(), 0, 6, 100, Loss::cross_entropy, serial[0]->opt, true, {},
                                      nullptr, nullptr, nullptr, N);
    const long allocs = n_new - before;
    printf("operator new calls in 20 split epochs: %ld (want 0)\n", allocs);
    // the team numbers its runs in 32 bits: epochs across the wrap give the same weights
    skip_team_runs((1ull << 32) - 7);
    Net across(1);
    train(across);
    const bool wrap_ok = across.p == serial[1]->p;
    printf("epochs across the run counter's wrap == serial: %d\n", int(wrap_ok));
    return same == 3 && allocs == 0 && wrap_ok ? 0 : 1;
}
