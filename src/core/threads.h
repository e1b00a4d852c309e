// Thread count control. Kernels parallelise with OpenMP; the count comes from -t (default: all
// cores) and is set once by the program before work starts.
#pragma once

#include <omp.h>

#include <cstdint>

namespace sy {

// Row-wise and elementwise kernels (norms, activations, rope, softmax, top-k, embedding rows) run
// on one thread below this many elements: waking the pool and joining it costs more than the work
// (a decode step calls each of them on one [1, D] row, or the router's [1, E], per layer).
constexpr int64_t kParallelMinElements = int64_t{1} << 15;

// An OpenMP region whose if-clause is false still builds and tears down a team of one thread:
// ~1 kcycle with libgomp's state in cache, ~20 kcycles once a stream of 64 MB has evicted it
// (scratch test, this host), which is where a decode step's row-wise kernels run, each on one
// row per layer. These two run small work on the calling thread without entering a region.

// body(tid, nt) on each thread of a new team when `parallel`, else body(0, 1) on the caller.
template <class Body>
void run_team(bool parallel, const Body& body) {
  if (!parallel) {
    body(0, 1);
    return;
  }
#pragma omp parallel
  body(omp_get_thread_num(), omp_get_num_threads());
}

// body(i) for each i in [begin, end): over a new team in static contiguous chunks when
// `parallel`, else in order on the caller.
template <class Body>
void parallel_for(int64_t begin, int64_t end, bool parallel, const Body& body) {
  if (!parallel) {
    for (int64_t i = begin; i < end; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = begin; i < end; ++i) body(i);
}

// Sets the OpenMP thread count used by our kernels (and by OpenBLAS's OpenMP build, which
// shares the pool). n <= 0 means all available cores.
void set_num_threads(int n);
int num_threads();
// Cores the process may run on (sched affinity), >= 1.
int available_cores();

}  // namespace sy
