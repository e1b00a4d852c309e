// Timing and reporting for `switchyard bench`. Every figure is one JSON object per line on
// stdout, in the shape DESIGN.md gives; a readable table goes to stderr.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace sy::bench {

struct Figure {
  std::string bench;   // suite: "kernels", "limits", "decode", ...
  std::string name;    // the "case" field: what was measured, e.g. "rms_norm_fwd/4096x4096"
  std::string metric;  // "GB_per_s", "GFLOP_per_s", "seconds", "tokens_per_s", ...
  double value = 0.0;
  std::optional<double> limit;  // the physical bound, measured in the same run
  std::string limit_kind;       // "bandwidth_bound", "gemm_peak", "fma_peak", ...
  std::string reference;        // what the reference is ("openblas", "pytorch", ...)
  std::optional<double> reference_value;
  bool lower_is_better = false;  // times: ratio and speedup are inverted
};

// The JSON line for a figure: ratio = value/limit and speedup = value/reference_value (both
// inverted when lower is better, so bigger is always better); absent fields are null.
std::string to_json_line(const Figure& f);

struct TimingOptions {
  int repeats = 7;            // timed samples; the median is reported
  double min_seconds = 0.05;  // each sample loops the body until at least this long
  int warmup = 1;             // untimed calls first
};

// Seconds per call of fn, one entry per sample.
std::vector<double> time_samples(const std::function<void()>& fn, const TimingOptions& opts);
double median(std::vector<double> values);

// Runs a reference script (a shell command line) whose last stdout line is a time in seconds, and
// returns that time; nullopt, with `what` and the script's output on stderr, when it fails or its
// last line is not a positive number (Python or torch missing), so a suite still reports its own
// figures.
std::optional<double> reference_seconds(const std::string& command, const std::string& what);

class Reporter {
 public:
  // Prints the JSON line to stdout and a table row to stderr.
  void emit(const Figure& f);
  const std::vector<Figure>& figures() const { return figures_; }

 private:
  std::vector<Figure> figures_;
  bool header_done_ = false;
};

}  // namespace sy::bench
