"""PyTorch reference timing for `switchyard bench moe`: the same MoE layer, written the usual way.

Top-k softmax router (renormalised over the K picks), SwiGLU experts in a per-expert loop with
index_select / index_add_, shared experts as one FFN of width shared * d_ff, float32 on the CPU.
Times forward + backward (gradients for x and every weight) and prints the median seconds of
one call as the last line of stdout.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=int, required=True)
    p.add_argument("--d-model", type=int, required=True)
    p.add_argument("--d-ff", type=int, required=True)
    p.add_argument("--experts", type=int, required=True)
    p.add_argument("--top-k", type=int, required=True)
    p.add_argument("--shared", type=int, default=0)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--min-seconds", type=float, default=0.0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    t, d, f, e, k = a.tokens, a.d_model, a.d_ff, a.experts, a.top_k

    def param(*shape):
        return (torch.randn(*shape) * 0.02).requires_grad_(True)

    router = param(e, d)
    gate, up, down = param(e, f, d), param(e, f, d), param(e, d, f)
    shared = [param(a.shared * f, d), param(a.shared * f, d), param(d, a.shared * f)] \
        if a.shared else []
    x = torch.randn(t, d).requires_grad_(True)
    d_y = torch.randn(t, d)

    def step():
        probs = torch.softmax(x @ router.t(), dim=-1)
        w, idx = probs.topk(k, dim=-1)
        w = w / w.sum(dim=-1, keepdim=True)
        flat_idx, flat_w = idx.reshape(-1), w.reshape(-1)
        token = torch.arange(t).repeat_interleave(k)
        y = torch.zeros(t, d)
        for i in range(e):
            slots = (flat_idx == i).nonzero().flatten()
            if slots.numel() == 0:
                continue
            tok = token[slots]
            xe = x.index_select(0, tok)
            ye = (F.silu(xe @ gate[i].t()) * (xe @ up[i].t())) @ down[i].t()
            y = y.index_add(0, tok, flat_w[slots].unsqueeze(1) * ye)
        if shared:
            y = y + (F.silu(x @ shared[0].t()) * (x @ shared[1].t())) @ shared[2].t()
        y.backward(d_y)

    step()  # warm-up
    samples = []
    for _ in range(a.repeats):
        calls, start = 0, time.perf_counter()
        while True:
            step()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= a.min_seconds:
                break
        samples.append(elapsed / calls)
    print(statistics.median(samples))


main()
