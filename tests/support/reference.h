// Runs a PyTorch reference script (tests/reference/<name>.py) on tensors the test made, and
// returns the script's outputs. Each case's inputs travel as .npy files in its own subfolder of a
// temporary folder, its parameters as params.json; outputs come back as out_<name>.npy. One
// Python process serves every case of a call (importing torch costs ~2 s), so tests should hand
// all their cases to one run_reference_cases call. Scripts compute in float64 and write float32.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace sy::test {

using NamedTensors = std::map<std::string, Tensor>;

struct ReferenceCase {
  NamedTensors inputs;
  nlohmann::json params = nlohmann::json::object();
};

// Outputs per case, in the order given. Throws sy::Error with the script's stderr when it fails.
std::vector<NamedTensors> run_reference_cases(const std::string& script,
                                              const std::vector<ReferenceCase>& cases);

// One case.
NamedTensors run_reference(const std::string& script, const NamedTensors& inputs,
                           const nlohmann::json& params = nlohmann::json::object());

}  // namespace sy::test
