// `switchyard env`: what this machine offers and what switchyard will use on it.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "apps/switchyard/commands.h"
#include "core/cpu_features.h"
#include "core/threads.h"
#include "kernels/cpu/gemm_cpu.h"

namespace sy::app {

Runner add_env_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("env", "print CPU features, SIMD path, threads and BLAS");
  return [cmd] {
    (void)cmd;
    const CpuFeatures& f = cpu_features();
    fmt::print("cpu:           {} ({})\n", f.model_name.empty() ? "unknown" : f.model_name, f.arch);
    fmt::print("features:      {}\n", fmt::join(f.names(), " "));
    fmt::print("simd paths:    {} (compiled in and supported)\n",
               fmt::join(simd_paths_available(), " "));
    fmt::print("simd chosen:   {}\n", simd_path_chosen());
    fmt::print("threads:       {} (of {} available cores)\n", num_threads(), available_cores());
    fmt::print("blas:          {}\n", kernels::cpu::blas_info());
    return 0;
  };
}

}  // namespace sy::app
