#include "bench/harness.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

namespace sy::bench {

namespace {
nlohmann::json opt(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}
std::optional<double> ratio_of(double value, const std::optional<double>& other, bool invert) {
  if (!other || *other == 0.0 || value == 0.0) return std::nullopt;
  return invert ? *other / value : value / *other;
}
}  // namespace

std::optional<double> reference_seconds(const std::string& command, const std::string& what) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  std::string out;
  char buf[256];
  while (fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  const int rc = pclose(pipe);
  const size_t start = out.find_last_of('\n', out.size() >= 2 ? out.size() - 2 : 0);
  const std::string last = out.substr(start == std::string::npos ? 0 : start + 1);
  char* end = nullptr;
  const double s = std::strtod(last.c_str(), &end);
  if (rc != 0 || end == last.c_str() || !(s > 0.0)) {
    std::fprintf(stderr, "%s: PyTorch reference failed (exit %d): %s\n", what.c_str(), rc,
                 out.c_str());
    return std::nullopt;
  }
  return s;
}

std::string to_json_line(const Figure& f) {
  nlohmann::ordered_json j;
  j["bench"] = f.bench;
  j["case"] = f.name;
  j["metric"] = f.metric;
  j["value"] = f.value;
  j["limit"] = opt(f.limit);
  j["limit_kind"] =
      f.limit ? nlohmann::ordered_json(f.limit_kind) : nlohmann::ordered_json(nullptr);
  j["ratio"] = opt(ratio_of(f.value, f.limit, f.lower_is_better));
  j["reference"] =
      f.reference.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(f.reference);
  j["reference_value"] = opt(f.reference_value);
  j["speedup"] = opt(ratio_of(f.value, f.reference_value, f.lower_is_better));
  return j.dump();
}

std::vector<double> time_samples(const std::function<void()>& fn, const TimingOptions& opts) {
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < opts.warmup; ++i) fn();
  // Calibrate how many calls make one sample of at least min_seconds.
  int inner = 1;
  for (;;) {
    const auto t0 = clock::now();
    for (int i = 0; i < inner; ++i) fn();
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    if (s >= opts.min_seconds || inner >= (1 << 20)) break;
    inner = s <= 0.0 ? inner * 16
                     : std::max(inner + 1, static_cast<int>(inner * opts.min_seconds / s * 1.2));
  }
  std::vector<double> samples;
  for (int r = 0; r < opts.repeats; ++r) {
    const auto t0 = clock::now();
    for (int i = 0; i < inner; ++i) fn();
    samples.push_back(std::chrono::duration<double>(clock::now() - t0).count() / inner);
  }
  return samples;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

void Reporter::emit(const Figure& f) {
  if (!header_done_) {
    std::fprintf(stderr, "%-10s %-34s %12s %-12s %10s %8s %10s\n", "bench", "case", "value",
                 "metric", "limit", "ratio", "speedup");
    header_done_ = true;
  }
  const auto j = nlohmann::json::parse(to_json_line(f));
  auto num = [&](const char* key) {
    return j[key].is_null() ? std::string("-") : fmt::format("{:.4g}", j[key].get<double>());
  };
  std::fprintf(stderr, "%-10s %-34s %12.4g %-12s %10s %8s %10s\n", f.bench.c_str(), f.name.c_str(),
               f.value, f.metric.c_str(), num("limit").c_str(), num("ratio").c_str(),
               num("speedup").c_str());
  std::printf("%s\n", to_json_line(f).c_str());
  std::fflush(stdout);
  figures_.push_back(f);
}

}  // namespace sy::bench
