// Embedding lookup: out[t] = table[ids[t]], and its backward, a scatter-add into the table.
//
// Legend: V vocabulary rows, D width, T tokens (ids of any batch of sequences, flattened).
#pragma once

#include "core/tensor.h"

namespace sy::kernels {

// out:   f32 [T, D] written
// table: f32 [V, D]
// ids:   i32 [T], each in [0, V); an id outside it throws sy::Error naming its position, the
//        id and V.
void embedding_forward(Tensor& out, const Tensor& table, const Tensor& ids);

// d_table: f32 [V, D] accumulated: d_table[ids[t]] += d_out[t] for every t.
// d_out:   f32 [T, D]
// ids:     i32 [T], checked as in forward.
// Deterministic: each element of d_table receives its terms in token order whatever the thread
// count (threads split the D columns, never the tokens), so repeated ids sum the same way on
// every run.
void embedding_backward(Tensor& d_table, const Tensor& d_out, const Tensor& ids);

}  // namespace sy::kernels
