// Thread count control. Kernels parallelise with OpenMP; the count comes from -t (default: all
// cores) and is set once by the program before work starts.
#pragma once

#include <cstdint>

namespace sy {

// Row-wise and elementwise kernels (norms, activations, rope, softmax, top-k, embedding rows) run
// on one thread below this many elements: waking the pool and joining it costs more than the work
// (a decode step calls each of them on one [1, D] row, or the router's [1, E], per layer).
constexpr int64_t kParallelMinElements = int64_t{1} << 15;

// Sets the OpenMP thread count used by our kernels (and by OpenBLAS's OpenMP build, which
// shares the pool). n <= 0 means all available cores.
void set_num_threads(int n);
int num_threads();
// Cores the process may run on (sched affinity), >= 1.
int available_cores();

}  // namespace sy
