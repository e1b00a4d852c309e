// Runs a PyTorch reference script (tests/reference/<name>.py) on tensors the test made, and
// returns the script's outputs. Inputs and outputs travel as .npy files in a temporary folder;
// parameters as params.json. The script computes in float64 and writes float32.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>

#include "core/tensor.h"

namespace sy::test {

using NamedTensors = std::map<std::string, Tensor>;

// Throws sy::Error with the script's stderr when it fails.
NamedTensors run_reference(const std::string& script, const NamedTensors& inputs,
                           const nlohmann::json& params = nlohmann::json::object());

}  // namespace sy::test
