// NumPy .npy files (format version 1.0/2.0, little-endian, C order): what `switchyard logits`
// writes and what the PyTorch reference scripts exchange with the tests.
#pragma once

#include <string>

#include "core/tensor.h"

namespace sy::io {

// Writes f32, f16, i32, i64 or u8 tensors atomically as <f4, <f2, <i4, <i8, |u1.
void write_npy(const std::string& path, const Tensor& tensor);

// Reads <f4, <f8 (converted to f32), <f2, <i4, <i8 and |u1 arrays. Throws sy::Error naming the
// file and the header field that is wrong (magic, descr, fortran_order, shape, size).
Tensor read_npy(const std::string& path);
Tensor parse_npy(std::string_view bytes, const std::string& name);

}  // namespace sy::io
