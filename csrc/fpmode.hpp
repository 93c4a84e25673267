// Subnormal results flushed to zero for the duration of a fused call, on the calling thread only.
//
// Why: an x86 core takes a microcode assist (~100+ cycles) for every float op that reads or
// produces a subnormal. Training with an L2 penalty drives the weights of dead ReLU units
// towards zero geometrically, through the subnormal range (below 1.2e-38 in float32), and then
// every product touching them is slow: scikit-learn's default MLP set-up on make_friedman1 ran
// 2.1x slower in float32 than in float64 on an Intel Xeon here. With FTZ an operation whose
// exact result would be subnormal gives 0, so training never makes a subnormal number and never
// reads one it made; this changes no result above 1.2e-38 (float32) or 2.2e-308 (float64).
//
// Only FTZ, not DAZ: subnormal operands are still read as what they are. A subnormal value a
// user hands in (a clip_norm of 1e-311, say) then compares and computes as itself, not as 0
// (with DAZ `clip_norm > 0` was false, and clipping was off).
//
// The guard saves MXCSR on entry and restores it on exit, so no other code (Python, NumPy, the
// user's own extensions) ever runs in this mode: a process-wide flush-to-zero is the very side
// effect -ffast-math is banned for. Elsewhere than x86-64 it does nothing.
#pragma once
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

namespace pynn {

// The calling thread's floating-point mode (MXCSR), to run work for it on another thread.
inline unsigned fp_mode() {
#if defined(__x86_64__) || defined(_M_X64)
    return _mm_getcsr();
#else
    return 0;
#endif
}
inline void set_fp_mode([[maybe_unused]] unsigned mode) {
#if defined(__x86_64__) || defined(_M_X64)
    _mm_setcsr(mode);
#endif
}

// Runs a scope in floating-point mode `mode` and puts the thread's own back on exit.
class WithFpMode {
   public:
    explicit WithFpMode(unsigned mode) : saved_(fp_mode()) { set_fp_mode(mode); }
    ~WithFpMode() { set_fp_mode(saved_); }
    WithFpMode(const WithFpMode&) = delete;
    WithFpMode& operator=(const WithFpMode&) = delete;

   private:
    unsigned saved_;
};

// The calling thread's mode with FTZ set (MXCSR bit 15; DAZ, bit 6, stays as the caller has it).
class FlushSubnormals : WithFpMode {
   public:
    FlushSubnormals() : WithFpMode(fp_mode() | 0x8000) {}
};

}  // namespace pynn
