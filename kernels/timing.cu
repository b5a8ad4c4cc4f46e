// A kernel that holds its stream until told to go, for timing launches of a few µs on the GPU alone.
//
// Launched one by one from the host, such kernels run as fast as the host queues them: the GPU idles between
// them and CUDA events around them time the host's launch rate, the same for every candidate (a launch through
// CuPy takes about as long on the host as a small product does on the GPU). Held behind this kernel, the
// launches pile up in the stream's queue; once ``go`` is set (by a launch on another stream) they run back to
// back, and the events between them time the kernels. As nvbench's blocking kernel does, it gives up after
// ``max_cycles`` of its SM's clock (a host that never says go must not hang the GPU) and then sets ``timed_out``:
// the times measured behind it are not to be trusted.
#include "common.cuh"

__global__ void hold(const volatile unsigned* go, unsigned* timed_out, long long max_cycles) {
    const long long start = clock64();
    while (*go == 0u) {
        if (clock64() - start > max_cycles) {
            *timed_out = 1u;
            return;
        }
        __nanosleep(1000);  // ns: the flag is polled a few thousand times a millisecond at most
    }
}
