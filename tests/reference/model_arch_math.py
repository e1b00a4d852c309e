"""Forward pass of the tiny MoE checkpoints, in float64, written from the published HF modeling
code (see model_arch.py's docstring for every formula choice). Weights are a dict of HF tensor
names -> float64 tensors ([out, in] for Linear); cfg is the config.json dict. Routers also
report how close each selection came to a tie, so model_arch.py can redraw near-tied weights."""
import math

import torch
import torch.nn.functional as F


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def linear(x, W, name):
    y = x @ W[name + ".weight"].t()
    if name + ".bias" in W:
        y = y + W[name + ".bias"]
    return y


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def default_inv_freq(dim, base):
    return 1.0 / base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)


# ---- YaRN as DeepSeek's modeling_deepseek.py writes it ----------------------------------------


def yarn_find_correction_dim(num_rotations, dim, base, max_pos):
    return (dim * math.log(max_pos / (num_rotations * 2 * math.pi))) / (2 * math.log(base))


def yarn_find_correction_range(low_rot, high_rot, dim, base, max_pos):
    low = math.floor(yarn_find_correction_dim(low_rot, dim, base, max_pos))
    high = math.ceil(yarn_find_correction_dim(high_rot, dim, base, max_pos))
    return max(low, 0), min(high, dim - 1)


def yarn_get_mscale(scale, mscale):
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def yarn_linear_ramp_mask(low, high, n):
    if low == high:
        high += 0.001
    return ((torch.arange(n, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)


def yarn_inv_freq(dim, base, rs):
    """inv_freq [dim/2] and the cos/sin magnitude factor of DeepseekV3YarnRotaryEmbedding."""
    factor = rs["factor"]
    orig = rs.get("original_max_position_embeddings", 4096)
    low, high = yarn_find_correction_range(rs.get("beta_fast", 32), rs.get("beta_slow", 1), dim,
                                           base, orig)
    extra = default_inv_freq(dim, base)
    inter = extra / factor
    keep = 1.0 - yarn_linear_ramp_mask(low, high, dim // 2)  # 1: extrapolate (original freq)
    inv_freq = inter * (1 - keep) + extra * keep
    mscale = yarn_get_mscale(factor, rs.get("mscale", 1)) / yarn_get_mscale(
        factor, rs.get("mscale_all_dim", 0))
    return inv_freq, mscale


def rope_neox(x, inv_freq, mscale=1.0):
    """HF rotate_half RoPE. x [T, H, d]; pairs (i, i + d/2) turn by pos * inv_freq[i]."""
    pos = torch.arange(x.shape[0], dtype=torch.float64)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos() * mscale, emb.sin() * mscale
    return x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]


def deinterleave(x):
    """DeepSeek's apply_rotary_pos_emb prelude: [x0, x1, x2, ...] -> [x0, x2, ..., x1, x3, ...]."""
    d = x.shape[-1]
    return x.reshape(*x.shape[:-1], d // 2, 2).transpose(-1, -2).reshape(x.shape)


def causal_attention(q, k, v, scale):
    """q [T, H, dk], k [T, Hkv, dk], v [T, Hkv, dv] -> [T, H * dv]; head h reads kv head
    h // (H / Hkv) (HF repeat_kv)."""
    t, h = q.shape[:2]
    rep = h // k.shape[1]
    k = k.repeat_interleave(rep, dim=1)
    v = v.repeat_interleave(rep, dim=1)
    scores = torch.einsum("thd,shd->hts", q, k) * scale
    future = torch.ones(t, t, dtype=torch.bool).triu(1)
    probs = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
    return torch.einsum("hts,shd->thd", probs, v).reshape(t, -1)


# ---- attention variants -------------------------------------------------------------------


def head_dim(cfg):
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def attention_gqa(cfg, W, p, x):
    """Mixtral, Qwen2-MoE (q/k/v biases come in through `linear`), Qwen3-MoE (per-head q/k
    RMSNorm before RoPE) and OLMoE (q/k RMSNorm over the whole projection, then clip_qkv)."""
    arch = cfg["model_type"]
    hd = head_dim(cfg)
    h, hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    eps = cfg["rms_norm_eps"]
    q, k, v = (linear(x, W, p + n) for n in ("q_proj", "k_proj", "v_proj"))
    if arch == "olmoe":
        q = rms_norm(q, W[p + "q_norm.weight"], eps)
        k = rms_norm(k, W[p + "k_norm.weight"], eps)
        clip = cfg.get("clip_qkv")
        if clip is not None:
            q, k, v = (t.clamp(-clip, clip) for t in (q, k, v))
    q, k, v = q.view(-1, h, hd), k.view(-1, hkv, hd), v.view(-1, hkv, hd)
    if arch == "qwen3_moe":
        q = rms_norm(q, W[p + "q_norm.weight"], eps)
        k = rms_norm(k, W[p + "k_norm.weight"], eps)
    inv_freq = default_inv_freq(hd, cfg["rope_theta"])
    q, k = rope_neox(q, inv_freq), rope_neox(k, inv_freq)
    return linear(causal_attention(q, k, v, hd ** -0.5), W, p + "o_proj")


def mla_rope(cfg):
    dim = cfg["qk_rope_head_dim"]
    rs = cfg.get("rope_scaling")
    if rs is None:
        return default_inv_freq(dim, cfg["rope_theta"]), 1.0
    assert rs["type"] == "yarn", rs
    return yarn_inv_freq(dim, cfg["rope_theta"], rs)


def mla_softmax_scale(cfg):
    scale = (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]) ** -0.5
    rs = cfg.get("rope_scaling")
    if rs is not None and rs.get("mscale_all_dim", 0):
        m = yarn_get_mscale(rs["factor"], rs["mscale_all_dim"])
        scale = scale * m * m
    return scale


def attention_mla(cfg, W, p, x):
    """DeepSeek-V2/V3 multi-head latent attention, un-absorbed (as the HF modeling file)."""
    h = cfg["num_attention_heads"]
    nope, rope, vd = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    r = cfg["kv_lora_rank"]
    eps = cfg["rms_norm_eps"]
    if cfg.get("q_lora_rank") is None:
        q = linear(x, W, p + "q_proj")
    else:
        q = linear(rms_norm(linear(x, W, p + "q_a_proj"), W[p + "q_a_layernorm.weight"], eps), W,
                   p + "q_b_proj")
    q = q.view(-1, h, nope + rope)
    q_nope, q_pe = q[..., :nope], q[..., nope:]
    ckv = linear(x, W, p + "kv_a_proj_with_mqa")
    c, k_pe = ckv[:, :r], ckv[:, r:].reshape(-1, 1, rope)
    kv = linear(rms_norm(c, W[p + "kv_a_layernorm.weight"], eps), W, p + "kv_b_proj")
    kv = kv.view(-1, h, nope + vd)
    k_nope, v = kv[..., :nope], kv[..., nope:]
    inv_freq, mscale = mla_rope(cfg)
    q_pe = rope_neox(deinterleave(q_pe), inv_freq, mscale)
    k_pe = rope_neox(deinterleave(k_pe), inv_freq, mscale)
    q = torch.cat((q_nope, q_pe), dim=-1)
    k = torch.cat((k_nope, k_pe.expand(-1, h, -1)), dim=-1)
    return linear(causal_attention(q, k, v, mla_softmax_scale(cfg)), W, p + "o_proj")


# ---- routers --------------------------------------------------------------------------------


class Margins:
    """Smallest selection margins seen over all MoE layers and tokens."""

    def __init__(self):
        self.expert_gap = math.inf  # k-th minus (k+1)-th selection score among eligible experts
        self.group_gap = math.inf  # topk_group-th minus next group score
        self.min_choice = math.inf  # smallest k-th choice score (noaux_tc: must stay > 0)

    def worst(self):
        return min(self.expert_gap, self.group_gap, self.min_choice)


def kth_gap(sorted_desc, k):
    if sorted_desc.shape[-1] <= k:
        return math.inf
    return float((sorted_desc[:, k - 1] - sorted_desc[:, k]).min())


def route_softmax_topk(logits, k, normalize, margins):
    """Mixtral / Qwen / OLMoE: softmax over all experts, top-k, optional renormalisation."""
    probs = torch.softmax(logits, dim=-1)
    top, idx = probs.sort(dim=-1, descending=True)
    margins.expert_gap = min(margins.expert_gap, kth_gap(top, k))
    w = top[:, :k]
    if normalize:
        w = w / w.sum(-1, keepdim=True)
    return idx[:, :k], w


def route_deepseek(cfg, logits, bias, margins):
    """DeepSeek MoEGate: greedy / group_limited_greedy (V2) / noaux_tc (V3)."""
    t, e = logits.shape
    k = cfg["num_experts_per_tok"]
    method = cfg["topk_method"]
    scores = torch.sigmoid(logits) if cfg["scoring_func"] == "sigmoid" else torch.softmax(
        logits, dim=-1)
    choice = scores + bias if method == "noaux_tc" else scores
    eligible = torch.ones(t, e, dtype=torch.bool)
    if method in ("group_limited_greedy", "noaux_tc"):
        g, tg = cfg["n_group"], cfg["topk_group"]
        grouped = choice.view(t, g, e // g)
        if method == "group_limited_greedy":
            group_scores = grouped.max(dim=-1).values
        else:
            group_scores = grouped.topk(2, dim=-1).values.sum(dim=-1)
        gs, gidx = group_scores.sort(dim=-1, descending=True)
        margins.group_gap = min(margins.group_gap, kth_gap(gs, tg))
        gmask = torch.zeros(t, g, dtype=torch.bool)
        gmask.scatter_(1, gidx[:, :tg], True)
        eligible = gmask[:, :, None].expand(t, g, e // g).reshape(t, e)
    else:
        assert method == "greedy", method
    masked = choice.masked_fill(~eligible, float("-inf"))
    top, idx = masked.sort(dim=-1, descending=True)
    margins.expert_gap = min(margins.expert_gap, kth_gap(top, k))
    if method == "noaux_tc":
        # HF fills unselected groups with 0, not -inf: the same picks iff the k-th choice is > 0
        margins.min_choice = min(margins.min_choice, float(top[:, k - 1].min()))
    idx = idx[:, :k]
    w = scores.gather(1, idx)
    normalize = k > 1 and cfg["norm_topk_prob"]
    if normalize:
        w = w / (w.sum(-1, keepdim=True) + 1e-20)
    if cfg["model_type"] == "deepseek_v3" or not normalize:
        w = w * cfg["routed_scaling_factor"]
    return idx, w


# ---- feed-forward ---------------------------------------------------------------------------


def swiglu(x, gate, up, down):
    return (F.silu(x @ gate.t()) * (x @ up.t())) @ down.t()


def mlp(x, W, p):
    return swiglu(x, W[p + "gate_proj.weight"], W[p + "up_proj.weight"], W[p + "down_proj.weight"])


def combine(x, idx, w, expert):
    """sum_k w[t, k] * expert(idx[t, k], x[t]), one expert at a time."""
    out = torch.zeros_like(x)
    for e in sorted(set(idx.flatten().tolist())):
        tok, slot = (idx == e).nonzero(as_tuple=True)
        out.index_add_(0, tok, w[tok, slot, None] * expert(e, x[tok]))
    return out


def is_sparse_layer(cfg, i):
    arch = cfg["model_type"]
    if arch in ("mixtral", "olmoe"):
        return True
    if arch in ("qwen2_moe", "qwen3_moe"):
        return (i not in cfg["mlp_only_layers"]) and (
            cfg["num_experts"] > 0 and (i + 1) % cfg["decoder_sparse_step"] == 0)
    return (cfg["n_routed_experts"] is not None and i >= cfg["first_k_dense_replace"]
            and i % cfg["moe_layer_freq"] == 0)


def ffn(cfg, W, i, x, margins):
    arch = cfg["model_type"]
    p = "model.layers.{}.".format(i)
    if arch == "mixtral":
        m = p + "block_sparse_moe."
        idx, w = route_softmax_topk(linear(x, W, m + "gate"), cfg["num_experts_per_tok"], True,
                                    margins)
        return combine(x, idx, w, lambda e, xs: swiglu(
            xs, W[m + "experts.{}.w1.weight".format(e)], W[m + "experts.{}.w3.weight".format(e)],
            W[m + "experts.{}.w2.weight".format(e)]))
    m = p + "mlp."
    if not is_sparse_layer(cfg, i):
        return mlp(x, W, m)

    def expert(e, xs):
        return mlp(xs, W, m + "experts.{}.".format(e))

    logits = linear(x, W, m + "gate")
    if arch.startswith("deepseek"):
        bias = W.get(m + "gate.e_score_correction_bias")
        idx, w = route_deepseek(cfg, logits, bias, margins)
        out = combine(x, idx, w, expert)
        if cfg.get("n_shared_experts"):
            out = out + mlp(x, W, m + "shared_experts.")
        return out
    idx, w = route_softmax_topk(logits, cfg["num_experts_per_tok"], cfg["norm_topk_prob"], margins)
    out = combine(x, idx, w, expert)
    if arch == "qwen2_moe":
        gate = torch.sigmoid(linear(x, W, m + "shared_expert_gate"))
        out = out + gate * mlp(x, W, m + "shared_expert.")
    return out


def forward(cfg, W, tokens):
    """Logits [T, V] for one causal sequence at positions 0..T-1, and the routing margins."""
    margins = Margins()
    eps = cfg["rms_norm_eps"]
    attention = attention_mla if cfg["model_type"].startswith("deepseek") else attention_gqa
    x = W["model.embed_tokens.weight"][torch.as_tensor(tokens, dtype=torch.int64)]
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.{}.".format(i)
        x = x + attention(cfg, W, p + "self_attn.", rms_norm(x, W[p + "input_layernorm.weight"],
                                                                 eps))
        x = x + ffn(cfg, W, i, rms_norm(x, W[p + "post_attention_layernorm.weight"], eps), margins)
    x = rms_norm(x, W["model.norm.weight"], eps)
    return x @ W["lm_head.weight"].t(), margins
