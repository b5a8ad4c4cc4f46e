// CUDA on the CPU: enough of the CUDA C++ execution model to compile kernels/*.cu unmodified with a host
// C++20 compiler and run them, so the test suite (and ThreadSanitizer / AddressSanitizer) sees the real kernel
// text without a GPU. tests/cuda_host/host.py includes this header, then the .cu sources, then a launch table.
//
// Model. A launch runs its blocks one after another; the threads of a block are std::threads (a pool kept for
// the process, reused by every block and launch); a warp is 32 consecutive linear thread ids (the last one may
// be partial).
// __syncthreads is a barrier of the block's threads, warp operations (__syncwarp, shuffles, votes) a barrier of
// the warp's threads. A thread that returns from the kernel drops out of both, as on a GPU since Volta, so a
// barrier after an early exit completes with the threads that remain.
//
// Barriers are counted under one mutex per launch rather than std::barrier: so the emulation knows how many
// threads are blocked, and a kernel that can never finish (a shuffle executed by half a warp while the other
// half waits at __syncthreads) is reported as an error naming the waiting threads instead of hanging the test
// suite. Waiters sleep on the phase's generation (std::atomic::wait, a futex). The arrivals' mutex and the
// release/acquire generation give ThreadSanitizer exactly CUDA's ordering: writes before a barrier happen before
// reads after it, and nothing else orders two threads, so a missing __syncthreads is a data race. A shuffle
// reading a lane that has exited or does not exist (undefined on a GPU) aborts the launch with an error.
//
// Cost: every barrier phase is an OS context switch per thread (a few µs here), so keep test blocks small.
//
// `__shared__` is `static`: one instance per kernel instantiation, which is right because only one block runs at
// a time and every thread of block b finishes (under the block mutex) before any thread of block b + 1 starts.
// `extern __shared__ T name[];` (the launch's dynamic shared memory) is the one construct no macro can turn into
// C++ (`extern static` is not C++): host.py rewrites each such declaration into
// `T* const name = cuda_host::dynamic_shared<T>();`, a buffer of exactly the launch's bytes, on the heap, so
// AddressSanitizer reports an access past it as it reports one past a global array.
#pragma once

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __shared__ static
#define __constant__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)

// CUDA's 16-byte vector types, as kernels/common.cuh moves rows by them.
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(16) double2 {
    double x, y;
};

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
constexpr int warpSize = 32;

namespace cuda_host {

// Thrown inside every thread of a launch that cannot go on (deadlock, exception in another thread).
struct Abort {};

// A barrier phase. Arrivals are counted under the block mutex; waiters sleep on `generation` (a futex through
// std::atomic::wait) so that a completed phase wakes them without each one re-taking the mutex.
struct Phase {
    unsigned arrived = 0, expected = 0;
    std::atomic<unsigned> generation{0};
};

struct Warp {
    Phase phase;
    // Shuffle exchange, double-buffered: operation n of the warp uses slots[n % 2], so one barrier per shuffle
    // suffices (a lane can only overwrite slots[n % 2] at operation n + 2, after every lane passed n + 1).
    // tag[b][lane] = the operation number that wrote the slot: a lane that has exited, or a lane that does not
    // exist in a partial warp, has a stale tag.
    uint64_t slot[2][32];
    unsigned long long tag[2][32];
};

enum Waiting : unsigned char { kRunning = 0, kSyncthreads = 1, kWarpOp = 2, kExited = 3 };

// One launch: the block in flight and its barriers. Counts change under `m`.
struct Grid {
    std::mutex m;
    Phase block;
    Phase done;  // generation = blocks finished
    std::unique_ptr<Warp[]> warps;
    std::unique_ptr<std::atomic<unsigned char>[]> waiting;  // per linear thread id, for the deadlock report
    unsigned nthreads = 0, nwarps = 0, live = 0, blocked = 0;
    std::atomic<bool> aborted{false};
    std::string error;

    unsigned warp_size(unsigned w) const { return w + 1 < nwarps ? 32u : nthreads - 32u * w; }

    void reset_block() {
        live = nthreads;
        block.arrived = 0;
        block.expected = nthreads;
        for (unsigned w = 0; w < nwarps; ++w) {
            warps[w].phase.arrived = 0;
            warps[w].phase.expected = warp_size(w);
            std::memset(warps[w].tag, 0, sizeof warps[w].tag);
        }
        for (unsigned t = 0; t < nthreads; ++t) waiting[t].store(kRunning, std::memory_order_relaxed);
    }

    static void wake(Phase& p) {
        p.generation.fetch_add(1, std::memory_order_release);
        p.generation.notify_all();
    }

    void abort_locked(std::string why) {
        if (aborted.load()) return;
        error = std::move(why);
        aborted.store(true);
        wake(block);
        wake(done);
        for (unsigned w = 0; w < nwarps; ++w) wake(warps[w].phase);
    }

    // Every live thread waits at a barrier that cannot complete: name them.
    void deadlock_locked() {
        std::string at_sync, at_warp;
        for (unsigned t = 0; t < nthreads; ++t) {
            const unsigned char where = waiting[t].load(std::memory_order_relaxed);
            std::string* list = where == kSyncthreads ? &at_sync : where == kWarpOp ? &at_warp : nullptr;
            if (list && list->size() < 200) *list += (list->empty() ? "" : " ") + std::to_string(t);
        }
        abort_locked("deadlock in block " + std::to_string(done.generation.load()) + ": threads {" + at_sync +
                     "} wait at __syncthreads, threads {" + at_warp +
                     "} at a warp operation (shuffle/__syncwarp/vote) that their whole warp does not reach");
    }

    // Completes `p` if every expected thread has arrived; the waiters it releases stop counting as blocked.
    bool try_complete(Phase& p) {
        if (p.arrived == 0 || p.arrived < p.expected) return false;
        blocked -= p.arrived;
        p.arrived = 0;
        wake(p);
        return true;
    }

    void arrive(unsigned tid, Phase& p, Waiting where) {
        std::unique_lock<std::mutex> lock(m);
        if (aborted.load()) throw Abort{};
        ++p.arrived;
        ++blocked;  // counts as a waiter until the phase completes: try_complete subtracts every arrival
        if (try_complete(p)) return;
        waiting[tid].store(where, std::memory_order_relaxed);
        if (blocked == live) {
            deadlock_locked();
            throw Abort{};
        }
        const unsigned generation = p.generation.load(std::memory_order_relaxed);
        lock.unlock();
        p.generation.wait(generation, std::memory_order_acquire);
        if (aborted.load()) throw Abort{};
        waiting[tid].store(kRunning, std::memory_order_relaxed);
    }

    // Thread `tid` returned from the kernel: it leaves the block and warp barriers, then waits for the block's
    // other threads. False when the launch was aborted.
    bool finish(unsigned tid) {
        std::unique_lock<std::mutex> lock(m);
        if (aborted.load()) return false;
        waiting[tid].store(kExited, std::memory_order_relaxed);
        Warp& w = warps[tid / 32];
        --block.expected;
        --w.phase.expected;
        --live;
        bool progress = try_complete(block);
        progress |= try_complete(w.phase);
        if (live == 0) {
            reset_block();
            wake(done);
            return true;
        }
        if (!progress && blocked == live) {
            deadlock_locked();
            return false;
        }
        const unsigned generation = done.generation.load(std::memory_order_relaxed);
        lock.unlock();
        done.generation.wait(generation, std::memory_order_acquire);
        return !aborted.load();
    }
};

struct ThreadContext {
    Grid* grid = nullptr;
    unsigned tid = 0, warp = 0, lane = 0;
    unsigned long long warp_ops = 0;  // warp operations this thread executed in the current block
};
inline thread_local ThreadContext ctx;

inline void syncthreads() {
    Grid& g = *ctx.grid;
    g.arrive(ctx.tid, g.block, kSyncthreads);
}

inline Warp& this_warp() { return ctx.grid->warps[ctx.warp]; }

inline void syncwarp() {
    ++ctx.warp_ops;
    Warp& w = this_warp();
    ctx.grid->arrive(ctx.tid, w.phase, kWarpOp);
}

// Publishes `bits` for this lane and waits for the warp; returns the buffer the warp wrote into.
inline unsigned exchange(uint64_t bits) {
    const unsigned long long op = ++ctx.warp_ops;
    Warp& w = this_warp();
    const unsigned b = op & 1;
    w.slot[b][ctx.lane] = bits;
    w.tag[b][ctx.lane] = op;
    ctx.grid->arrive(ctx.tid, w.phase, kWarpOp);
    return b;
}

// The value lane `src` published in this operation; false for src = -1 (outside the shuffle's segment: the
// caller keeps its own value). Reading a lane that has exited or does not exist (partial warp) is undefined
// on a GPU, so it aborts the launch.
inline bool read_lane(unsigned b, int src, uint64_t& bits) {
    Warp& w = this_warp();
    if (src < 0) return false;
    if (src >= 32 || w.tag[b][src] != ctx.warp_ops) {
        throw std::runtime_error("thread " + std::to_string(ctx.tid) + " read lane " + std::to_string(src) + " (thread " +
                                 std::to_string(ctx.warp * 32 + src) + ") in a shuffle, which has exited " +
                                 "or does not exist (partial warp)");
    }
    bits = w.slot[b][src];
    return true;
}

template <class T>
T shuffle(T var, int src) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffles move trivially copyable values of up to 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &var, sizeof(T));
    const unsigned b = exchange(bits);
    if (read_lane(b, src, bits)) std::memcpy(&var, &bits, sizeof(T));
    return var;
}

inline unsigned ballot(bool predicate) {
    const unsigned b = exchange(predicate);
    unsigned out = 0;
    Warp& w = this_warp();
    for (int lane = 0; lane < 32; ++lane) {
        if (w.tag[b][lane] == ctx.warp_ops && w.slot[b][lane]) out |= 1u << lane;  // exited lanes vote 0
    }
    return out;
}

inline unsigned live_lanes_mask() {
    const unsigned n = ctx.grid->warp_size(ctx.warp);
    return n == 32 ? 0xffffffffu : (1u << n) - 1u;
}

// Start of the width-wide segment that holds this lane.
inline int segment(int width) { return (int)ctx.lane / width * width; }

template <class T>
T atomic_update(T* address, T val, T (*op)(T, T)) {
    std::atomic_ref<T> ref(*address);
    T old = ref.load();
    while (!ref.compare_exchange_weak(old, op(old, val))) {
    }
    return old;
}

// The OS threads that play a block's threads, kept for the life of the process: creating them per launch cost
// more than running small kernels (about 1 ms per thread under ThreadSanitizer). Worker i runs thread i of
// every block of a launch. Never destroyed: at exit the idle workers just vanish with the process.
class Pool {
  public:
    // Runs job(i) on workers 0..n-1 and waits for all of them.
    void run(unsigned n, const std::function<void(unsigned)>& job) {
        while (workers_.size() < n) workers_.push_back(std::make_unique<Worker>(this, (unsigned)workers_.size()));
        job_ = &job;
        remaining_.store(n);
        for (unsigned i = 0; i < n; ++i) {
            workers_[i]->go.fetch_add(1, std::memory_order_release);
            workers_[i]->go.notify_one();
        }
        for (unsigned left = remaining_.load(std::memory_order_acquire); left; left = remaining_.load(std::memory_order_acquire))
            remaining_.wait(left, std::memory_order_acquire);
    }

  private:
    struct Worker {
        std::atomic<unsigned> go{0};
        Worker(Pool* pool, unsigned index) {
            std::thread([this, pool, index] {
                for (unsigned seen = 0;; ++seen) {
                    go.wait(seen, std::memory_order_acquire);
                    (*pool->job_)(index);
                    if (pool->remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) pool->remaining_.notify_one();
                }
            }).detach();
        }
    };
    std::vector<std::unique_ptr<Worker>> workers_;
    const std::function<void(unsigned)>* job_ = nullptr;
    std::atomic<unsigned> remaining_{0};
};

// The dynamic shared memory of the launch in flight (one launch at a time); see the top of this file.
inline unsigned char* dynamic_shared_base = nullptr;

template <class T>
T* dynamic_shared() {
    return reinterpret_cast<T*>(dynamic_shared_base);
}

// A launch: `body` runs the kernel with its arguments bound for the calling thread's indices, with
// `shared_bytes` of dynamic shared memory (new[]'s alignment, 16 bytes, is what CUDA guarantees too).
inline int run_grid(dim3 grid, dim3 block, unsigned shared_bytes, const std::function<void()>& body, char* err,
                    int errlen) {
    static std::mutex launches;  // one launch at a time: __shared__ storage is static, and the pool is one
    static Pool* pool = new Pool;
    std::lock_guard<std::mutex> one_at_a_time(launches);
    const std::unique_ptr<unsigned char[]> dynamic(new unsigned char[shared_bytes]);
    dynamic_shared_base = dynamic.get();
    Grid g;
    g.nthreads = block.x * block.y * block.z;
    g.nwarps = (g.nthreads + 31) / 32;
    g.warps.reset(new Warp[g.nwarps]);
    g.waiting.reset(new std::atomic<unsigned char>[g.nthreads]);
    g.reset_block();
    const unsigned long long nblocks = (unsigned long long)grid.x * grid.y * grid.z;

    const std::function<void(unsigned)> thread_main = [&](unsigned tid) {
        ctx = ThreadContext{&g, tid, tid / 32, tid % 32, 0};
        threadIdx = dim3(tid % block.x, tid / block.x % block.y, tid / (block.x * block.y));
        blockDim = block;
        gridDim = grid;
        for (unsigned long long b = 0; b < nblocks; ++b) {
            blockIdx = dim3(b % grid.x, b / grid.x % grid.y, b / ((unsigned long long)grid.x * grid.y));
            ctx.warp_ops = 0;
            try {
                body();
            } catch (const Abort&) {
                return;
            } catch (const std::exception& e) {
                std::lock_guard<std::mutex> lock(g.m);
                g.abort_locked(std::string("exception in a kernel thread: ") + e.what());
                return;
            }
            if (!g.finish(tid)) return;
        }
    };
    try {
        pool->run(g.nthreads, thread_main);
    } catch (const std::exception& e) {  // no worker has started: the pool grows before it runs anything
        std::snprintf(err, (size_t)errlen, "could not start the block's threads: %s", e.what());
        return 1;
    }
    if (!g.aborted) return 0;
    std::snprintf(err, (size_t)errlen, "%s", g.error.c_str());
    return 1;
}

// ---- launch table -------------------------------------------------------------------------------------------

enum Kind : int { kPointer = 0, kFloating = 1, kInteger = 2, kOther = 3 };

struct ParamInfo {
    int size, kind;
    int pointee_size, pointee_kind, pointee_const;  // for pointers: 0 size / kOther for void
};

template <class T>
constexpr int kind_of() {
    return std::is_pointer_v<T> ? kPointer : std::is_floating_point_v<T> ? kFloating : std::is_integral_v<T> ? kInteger : kOther;
}

template <class T>
constexpr ParamInfo param_info() {
    if constexpr (std::is_pointer_v<T>) {
        using P = std::remove_pointer_t<T>;
        using U = std::remove_cv_t<P>;
        if constexpr (std::is_void_v<U>)
            return {(int)sizeof(T), kPointer, 0, kOther, std::is_const_v<P>};
        else
            return {(int)sizeof(T), kPointer, (int)sizeof(U), kind_of<U>(), std::is_const_v<P>};
    } else {
        return {(int)sizeof(T), kind_of<T>(), 0, kOther, 0};
    }
}

template <class... A>
inline constexpr ParamInfo kParams[sizeof...(A) + 1] = {param_info<A>()..., ParamInfo{0, kOther, 0, kOther, 0}};

using Erased = void (*)();
using Launch = int (*)(Erased, dim3, dim3, unsigned, void**, char*, int);

struct Entry {
    const char* name;
    Erased fn;
    int nparams;
    const ParamInfo* params;
    Launch launch;
};

template <class T>
T load_arg(void* p) {
    static_assert(std::is_trivially_copyable_v<T>, "kernel parameters are copied bytewise, as cudaLaunchKernel does");
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

template <class... A, size_t... I>
int launch_impl(void (*fn)(A...), dim3 grid, dim3 block, unsigned shared_bytes, void** args, char* err, int errlen,
                std::index_sequence<I...>) {
    // Parameters are copied once, in the launching thread, as cudaLaunchKernel copies them into the launch.
    const std::tuple<std::decay_t<A>...> values{load_arg<std::decay_t<A>>(args[I])...};
    return run_grid(grid, block, shared_bytes, [&] { std::apply(fn, values); }, err, errlen);
}

template <class... A>
int launch(Erased fn, dim3 grid, dim3 block, unsigned shared_bytes, void** args, char* err, int errlen) {
    return launch_impl(reinterpret_cast<void (*)(A...)>(fn), grid, block, shared_bytes, args, err, errlen,
                       std::index_sequence_for<A...>{});
}

template <class... A>
Entry entry(const char* name, void (*fn)(A...)) {
    return Entry{name, reinterpret_cast<Erased>(fn), (int)sizeof...(A), kParams<std::decay_t<A>...>, &launch<A...>};
}

}  // namespace cuda_host

// ---- CUDA device API ----------------------------------------------------------------------------------------

inline void __syncthreads() { cuda_host::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { cuda_host::syncwarp(); }
inline unsigned __activemask() { return cuda_host::live_lanes_mask(); }
inline unsigned __ballot_sync(unsigned, int predicate) { return cuda_host::ballot(predicate != 0); }
inline int __any_sync(unsigned, int predicate) { return cuda_host::ballot(predicate != 0) != 0; }
inline int __all_sync(unsigned, int predicate) { return cuda_host::ballot(predicate == 0) == 0; }

// Shuffles follow the CUDA programming guide: width splits the warp into segments; a source outside the
// segment (or a lane that has exited) leaves the caller's own value.
template <class T>
T __shfl_sync(unsigned, T var, int src_lane, int width = warpSize) {
    return cuda_host::shuffle(var, cuda_host::segment(width) + (src_lane % width + width) % width);
}
template <class T>
T __shfl_xor_sync(unsigned, T var, int lane_mask, int width = warpSize) {
    const int src = (int)cuda_host::ctx.lane ^ lane_mask;
    return cuda_host::shuffle(var, src < cuda_host::segment(width) + width ? src : -1);
}
template <class T>
T __shfl_down_sync(unsigned, T var, unsigned delta, int width = warpSize) {
    const int src = (int)cuda_host::ctx.lane + (int)delta;
    return cuda_host::shuffle(var, src < cuda_host::segment(width) + width ? src : -1);
}
template <class T>
T __shfl_up_sync(unsigned, T var, unsigned delta, int width = warpSize) {
    const int src = (int)cuda_host::ctx.lane - (int)delta;
    return cuda_host::shuffle(var, src >= cuda_host::segment(width) ? src : -1);
}

template <class T>
T atomicAdd(T* address, T val) { return std::atomic_ref<T>(*address).fetch_add(val); }
template <class T>
T atomicSub(T* address, T val) { return std::atomic_ref<T>(*address).fetch_sub(val); }
template <class T>
T atomicExch(T* address, T val) { return std::atomic_ref<T>(*address).exchange(val); }
template <class T>
T atomicAnd(T* address, T val) { return std::atomic_ref<T>(*address).fetch_and(val); }
template <class T>
T atomicOr(T* address, T val) { return std::atomic_ref<T>(*address).fetch_or(val); }
template <class T>
T atomicXor(T* address, T val) { return std::atomic_ref<T>(*address).fetch_xor(val); }
template <class T>
T atomicMax(T* address, T val) {
    return cuda_host::atomic_update<T>(address, val, [](T a, T b) { return a < b ? b : a; });
}
template <class T>
T atomicMin(T* address, T val) {
    return cuda_host::atomic_update<T>(address, val, [](T a, T b) { return b < a ? b : a; });
}
template <class T>
T atomicCAS(T* address, T compare, T val) {
    std::atomic_ref<T>(*address).compare_exchange_strong(compare, val);
    return compare;  // the old value either way
}

// CUDA's wrapping increment: old ≥ limit ? 0 : old + 1, atomically; returns old
inline unsigned atomicInc(unsigned* address, unsigned limit) {
    return cuda_host::atomic_update<unsigned>(address, limit, [](unsigned old, unsigned l) { return old >= l ? 0u : old + 1; });
}
// The SM's cycle counter: here nanoseconds of a steady clock, which counts up as the cycles do
inline long long clock64() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
inline void __nanosleep(unsigned ns) { std::this_thread::sleep_for(std::chrono::nanoseconds(ns)); }
// Orders this thread's memory operations before those that follow, as seen by every thread
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

template <class T>
T __ldg(const T* p) { return *p; }
// A load through L2 only: the host has one coherent memory (blocks run in turn)
template <class T>
T __ldcg(const T* p) { return *p; }

inline float __int_as_float(int x) { float f; std::memcpy(&f, &x, 4); return f; }
inline int __float_as_int(float x) { int i; std::memcpy(&i, &x, 4); return i; }
inline float __uint_as_float(unsigned x) { float f; std::memcpy(&f, &x, 4); return f; }
inline unsigned __float_as_uint(float x) { unsigned i; std::memcpy(&i, &x, 4); return i; }
inline double __longlong_as_double(long long x) { double d; std::memcpy(&d, &x, 8); return d; }
inline long long __double_as_longlong(double x) { long long i; std::memcpy(&i, &x, 8); return i; }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __ffs(int x) { return __builtin_ffs(x); }

// Fast-math intrinsics: the host computes them exactly (the GPU's are approximations within documented ulps).
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : x > 1.f ? 1.f : x; }
inline float __frcp_rn(float x) { return 1.f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline double __drcp_rn(double x) { return 1.0 / x; }
inline double __dsqrt_rn(double x) { return sqrt(x); }

// Math that CUDA provides and the C library does not.
inline float rsqrtf(float x) { return 1.f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float rcbrtf(float x) { return 1.f / cbrtf(x); }
inline double rcbrt(double x) { return 1.0 / cbrt(x); }
inline float sinpif(float x) { return sinf(3.14159265358979323846f * x); }
inline double sinpi(double x) { return sin(3.14159265358979323846 * x); }
inline float cospif(float x) { return cosf(3.14159265358979323846f * x); }
inline double cospi(double x) { return cos(3.14159265358979323846 * x); }
inline float normcdff(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }
inline double normcdf(double x) { return 0.5 * erfc(-x * 0.70710678118654752); }
// erfinv and erfcinv: the root of erf(w) = a, erfc(w) = q (a = 1 − q, each exact where it is read) by Winitzki's
// start and Halley's steps on the C library's erf and erfc, as minivae/_cpu/special.py computes them.
namespace cuda_host {
inline double erf_root(double a, double q) {
    const bool tail = a >= 0.5;
    const double l = tail ? log(q) + log1p(a) : log1p(-a * a), b = 2 / (3.14159265358979323846 * 0.147) + l / 2;
    const double c = -l / 0.147, root = sqrt(b * b + c);
    double w = sqrt(b > 0 ? c / (root + b) : root - b);
    for (int k = 0; k < 4; ++k) {
        double u = (tail ? q - erfc(w) : erf(w) - a) * 0.88622692545275801 / exp(-w * w);
        if (q < 2.2250738585072014e-308) {  // below the normal numbers, as the formula: e^{log q + w²} − e^{w²} erfc w
            const double x = fmax(fmin(w, 28.0), 4.125), hi = x * 134217729.0 - (x * 134217729.0 - x);
            double t = x;
            for (int n = 30; n > 0; --n) t = x + (n / 2.0) / t;
            u = 0.88622692545275801 * (exp((log(q) + hi * hi) + (x - hi) * (x + hi)) - 0.56418958354775629 / t);
        }
        w -= u / (1 + w * u);
    }
    return w;
}
}  // namespace cuda_host
inline double erfinv(double y) {
    const double a = fabs(y);
    return a < 1 ? copysign(cuda_host::erf_root(a, 1 - a), y) : a == 1 ? copysign(HUGE_VAL, y) : NAN;
}
inline double erfcinv(double z) {
    if (!(z > 0 && z < 2)) return z == 0 ? HUGE_VAL : z == 2 ? -HUGE_VAL : NAN;
    return z > 1 ? -cuda_host::erf_root(z - 1, 2 - z) : cuda_host::erf_root(1 - z, z);
}

// CUDA's min/max are overloaded builtins for integers and floating point.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a < b ? b : a; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a < b ? b : a; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a < b ? b : a; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a < b ? b : a; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

// The table a generated shim defines; host.py reads it through these functions.
#define CUDA_HOST_TABLE(...)                                                                                  \
    static const cuda_host::Entry cuda_host_entries[] = {__VA_ARGS__};                                        \
    extern "C" int cuda_host_count() { return (int)(sizeof cuda_host_entries / sizeof cuda_host_entries[0]); } \
    extern "C" const char* cuda_host_name(int i) { return cuda_host_entries[i].name; }                        \
    extern "C" int cuda_host_nparams(int i) { return cuda_host_entries[i].nparams; }                          \
    extern "C" const cuda_host::ParamInfo* cuda_host_params(int i) { return cuda_host_entries[i].params; }    \
    extern "C" int cuda_host_launch(int i, const unsigned* grid, const unsigned* block, unsigned shared_bytes,   \
                                    void** args, char* err, int errlen) {                                     \
        const cuda_host::Entry& e = cuda_host_entries[i];                                                     \
        return e.launch(e.fn, dim3(grid[0], grid[1], grid[2]), dim3(block[0], block[1], block[2]), shared_bytes, \
                        args, err, errlen);                                                                   \
    }
