"""PyTorch reference timing for `switchyard bench train`: one training step of the study model,
written the usual way in PyTorch, float32 on the CPU with the same thread count.

The model is train/lm.h's definition: token embedding; per layer RMSNorm -> causal GQA attention
(q/k/v/o projections without bias, NeoX RoPE, masked softmax(q k^T / sqrt(Dh)) v) -> residual ->
RMSNorm -> MoE FFN (softmax router, top-k renormalised, Switch load-balancing loss with
coefficient --aux-coeff; SwiGLU experts run in a per-expert loop with index_select / index_add)
-> residual; final RMSNorm; untied LM head; mean cross-entropy. A step is zero_grad, forward,
backward and (unless --no-optimizer) torch.optim.AdamW's step. Tokens are uniform random ids.
Prints the median seconds of one step as the last line of stdout.
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, cos, sin):
    # x [B, H, T, Dh]; NeoX: rotate the two halves of each head.
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Attention(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.hq, self.hkv, self.hd = a.heads, a.kv_heads, a.d_model // a.heads
        self.q = nn.Linear(a.d_model, self.hq * self.hd, bias=False)
        self.k = nn.Linear(a.d_model, self.hkv * self.hd, bias=False)
        self.v = nn.Linear(a.d_model, self.hkv * self.hd, bias=False)
        self.o = nn.Linear(self.hq * self.hd, a.d_model, bias=False)
        self.mask = torch.triu(torch.ones(a.seq, a.seq, dtype=torch.bool), diagonal=1)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.hq, self.hd).transpose(1, 2)
        k = self.k(x).view(b, t, self.hkv, self.hd).transpose(1, 2)
        v = self.v(x).view(b, t, self.hkv, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if self.hkv != self.hq:
            k = k.repeat_interleave(self.hq // self.hkv, dim=1)
            v = v.repeat_interleave(self.hq // self.hkv, dim=1)
        # torch 1.13 (Debian's) has no F.scaled_dot_product_attention: the usual explicit form.
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))
        scores = scores.masked_fill(self.mask[:t, :t], float("-inf"))
        o = torch.softmax(scores, dim=-1) @ v
        return self.o(o.transpose(1, 2).reshape(b, t, self.hq * self.hd))


class Moe(nn.Module):
    def __init__(self, a):
        super().__init__()
        e, d, f = a.experts, a.d_model, a.d_ff
        self.e, self.k, self.aux = e, a.top_k, a.aux_coeff
        self.gate = nn.Linear(d, e, bias=False)
        self.w_gate = nn.Parameter(torch.randn(e, f, d) * 0.02)
        self.w_up = nn.Parameter(torch.randn(e, f, d) * 0.02)
        self.w_down = nn.Parameter(torch.randn(e, d, f) * 0.02)

    def forward(self, x):
        n, d = x.shape
        probs = torch.softmax(self.gate(x), dim=-1)
        w, idx = probs.topk(self.k, dim=-1)
        w = w / w.sum(dim=-1, keepdim=True)
        flat_idx, flat_w = idx.reshape(-1), w.reshape(-1)
        token = torch.arange(n).repeat_interleave(self.k)
        y = torch.zeros(n, d)
        for i in range(self.e):
            slots = (flat_idx == i).nonzero().flatten()
            if slots.numel() == 0:
                continue
            tok = token[slots]
            xe = x.index_select(0, tok)
            ye = (F.silu(xe @ self.w_gate[i].t()) * (xe @ self.w_up[i].t())) @ self.w_down[i].t()
            y = y.index_add(0, tok, flat_w[slots].unsqueeze(1) * ye)
        counts = torch.bincount(flat_idx, minlength=self.e).float() / (n * self.k)
        aux = self.aux * self.e * (counts * probs.mean(0)).sum()
        return y, aux


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.ln1, self.ln2 = RMSNorm(a.d_model, 1e-6), RMSNorm(a.d_model, 1e-6)
        self.attn = Attention(a)
        self.moe = Moe(a)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        x = x + self.attn(self.ln1(x), cos, sin)
        y, aux = self.moe(self.ln2(x).reshape(b * t, d))
        return x + y.view(b, t, d), aux


class Model(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed = nn.Embedding(a.vocab, a.d_model)
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.d_model, 1e-6)
        self.head = nn.Linear(a.d_model, a.vocab, bias=False)
        hd = a.d_model // a.heads
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        ang = torch.arange(a.seq, dtype=torch.float32)[:, None] * inv[None, :]
        self.cos, self.sin = ang.cos(), ang.sin()
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, tokens, targets):
        x = self.embed(tokens)
        aux_total = 0.0
        for blk in self.blocks:
            x, aux = blk(x, self.cos, self.sin)
            aux_total = aux_total + aux
        logits = self.head(self.norm(x))
        ce = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))
        return ce + aux_total


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--vocab", type=int, required=True)
    p.add_argument("--d-model", type=int, required=True)
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("--heads", type=int, required=True)
    p.add_argument("--kv-heads", type=int, required=True)
    p.add_argument("--experts", type=int, required=True)
    p.add_argument("--top-k", type=int, required=True)
    p.add_argument("--d-ff", type=int, required=True)
    p.add_argument("--seq", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--aux-coeff", type=float, default=0.01)
    p.add_argument("--no-optimizer", action="store_true")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Model(a)
    opt = None
    if not a.no_optimizer:
        decay = [q for q in model.parameters() if q.dim() >= 2]
        no_decay = [q for q in model.parameters() if q.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    tokens = torch.randint(0, a.vocab, (a.batch, a.seq))
    targets = torch.randint(0, a.vocab, (a.batch, a.seq))

    def step():
        model.zero_grad(set_to_none=False)
        loss = model(tokens, targets)
        loss.backward()
        if opt is not None:
            opt.step()
        return loss.item()

    for _ in range(a.warmup):
        loss = step()
        assert math.isfinite(loss)
    samples = []
    for _ in range(a.steps):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    print(statistics.median(samples))


main()
