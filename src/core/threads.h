// Thread count control. Kernels parallelise with OpenMP; the count comes from -t (default: all
// cores) and is set once by the program before work starts.
#pragma once

namespace sy {

// Sets the OpenMP thread count used by our kernels (and by OpenBLAS's OpenMP build, which
// shares the pool). n <= 0 means all available cores.
void set_num_threads(int n);
int num_threads();
// Cores the process may run on (sched affinity), >= 1.
int available_cores();

}  // namespace sy
