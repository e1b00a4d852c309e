"""Tiny random MoE checkpoints in the real HF and GGUF layouts, and their logits from an
independent float64 PyTorch forward pass written from the published modeling code.

Params per case: {"case", "dir", "seed", "tokens", "dtype": "f32"|"bf16"|"f16" (safetensors
storage, default f32), "shards": 1|2 (default 1), "gguf": bool (default true), "overrides": {HF
config key: value} (optional, applied to the case's config.json before weights are drawn)}.
Writes config.json, model.safetensors (or two shards + model.safetensors.index.json) and
model.gguf into dir; returns out_logits f32 [T, V] and out_seed i64 [1] (the seed actually used).

Cases (hidden 64, every config written in full in CASES below):
  mixtral           MixtralForCausalLM, 2 layers, 4 heads / 2 kv heads, head_dim 16, 8 experts
                    top-2, rope_theta 1e6, vocab 128.
  qwen2_moe         Qwen2MoeForCausalLM, 3 layers (layer 1 dense via mlp_only_layers), q/k/v
                    biases, shared expert 48 wide with sigmoid gate, 8 experts top-2,
                    norm_topk_prob false.
  qwen3_moe         Qwen3MoeForCausalLM, 4 layers, decoder_sparse_step 2 (layers 1, 3 sparse),
                    6 heads x head_dim 16 = 96 != hidden, 2 kv heads, per-head q/k RMSNorm,
                    8 experts top-3, norm_topk_prob true.
  olmoe             OlmoeForCausalLM, 2 layers, 4 heads = kv heads, q/k RMSNorm over the whole
                    projection, clip_qkv 0.5, 8 experts top-2, norm_topk_prob false.
  deepseek_v2_lite  DeepseekV2ForCausalLM, q_proj (q_lora_rank null), kv_lora_rank 32, nope 16,
                    rope 8, v 16, 3 layers (layer 0 dense), 8 experts top-3, 2 shared, greedy.
  deepseek_v2       as lite with q_lora_rank 24, group_limited_greedy (4 groups, top 2 by max),
                    routed_scaling_factor 16, YaRN factor 4 (original 512: keep mask [1, .5, 0, 0]).
  deepseek_v3       DeepseekV3ForCausalLM, sigmoid + noaux_tc (e_score_correction_bias f32),
                    16 experts top-4 in 4 groups (group score = sum of top 2), norm_topk_prob true,
                    routed_scaling_factor 2.5, 1 shared, YaRN factor 4 (original 4096: keep mask
                    [1, 1, .5, 0]), mscale = mscale_all_dim = 1.

Formulas (float64 throughout; the HF code computes routers in float32):
- RMSNorm(x) = x * rsqrt(mean(x^2) + eps) * w. SwiGLU expert = down(silu(gate x) * up x);
  Mixtral's w1 = gate, w3 = up, w2 = down.
- RoPE: HF rotate_half on pairs (i, i + d/2), inv_freq = theta^(-2i/d) (computed in float64; HF
  uses float32 inv_freq, a ~1e-7 relative difference). Attention: causal softmax(q k^T / sqrt(d))
  v, kv head h // (H / H_kv) for query head h (repeat_kv).
- Qwen2-MoE: q/k/v with bias; y = sum_k p_k E_k(x) + sigmoid(shared_expert_gate x) * shared(x).
  A layer i is sparse iff i not in mlp_only_layers and num_experts > 0 and
  (i + 1) % decoder_sparse_step == 0, else a dense MLP of intermediate_size (Qwen3-MoE alike).
- Qwen3-MoE: q_norm/k_norm are RMSNorm over head_dim applied per head before RoPE.
- OLMoE: q = RMSNorm(q_proj x) over H*hd, k = RMSNorm(k_proj x) over H_kv*hd, then q, k, v are
  clamped to [-clip_qkv, clip_qkv], then RoPE.
- Routing: Mixtral softmax -> top-k -> renormalise; Qwen/OLMoE softmax -> top-k -> renormalise iff
  norm_topk_prob. DeepSeek: scores = softmax or sigmoid(logits); greedy = top-k of scores;
  group_limited_greedy: group score = max of the group's scores, keep topk_group groups, top-k of
  scores inside them; noaux_tc: choice = scores + e_score_correction_bias, group score = sum of
  the top 2 choices of the group, keep topk_group groups, top-k of choice inside them, weights =
  the unbiased scores. V2: w /= sum(w) + 1e-20 if norm_topk_prob (and k > 1) else w *= rsf.
  V3: w /= sum(w) + 1e-20 if norm_topk_prob, then always w *= rsf. Shared experts: one MLP of
  moe_intermediate_size * n_shared_experts added unweighted. Layer i is MoE iff
  i >= first_k_dense_replace and i % moe_layer_freq == 0, else an MLP of intermediate_size.
  HF fills the experts of unselected groups with 0 before top-k (not -inf); we use -inf and
  require the k-th largest eligible choice to exceed 1e-4, which makes the two identical.
- MLA (DeepSeek): q = q_proj x or q_b(RMSNorm(q_a x)); per head q = [q_nope (16) | q_pe (8)];
  [c (kv_lora_rank) | k_pe (rope, one head shared by all)] = kv_a_proj_with_mqa x;
  [k_nope | v] per head = kv_b(RMSNorm(c)); q_pe and k_pe are de-interleaved
  ([x0, x2, .., x1, x3, ..]) and then turned with rotate_half (this equals GPT-J interleaved
  rotation of the original pairs (2i, 2i+1)); k = [k_nope | k_pe]; scale = (nope+rope)^-0.5,
  times mscale^2 with mscale = 0.1 * mscale_all_dim * ln(factor) + 1 when rope_scaling has a
  non-zero mscale_all_dim.
- YaRN (modeling_deepseek.py): low/high = floor/ceil of dim*ln(orig/(beta*2*pi))/(2 ln theta)
  for beta_fast/beta_slow, clamped to [0, dim-1]; ramp_i = clamp((i - low)/(high - low)) over
  i < dim/2; inv_freq = (theta^(-2i/d)/factor) * ramp + theta^(-2i/d) * (1 - ramp); cos and sin
  are multiplied by yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim).

Near ties: for every MoE layer and token the gap between the k-th and (k+1)-th selection score
among eligible experts, and between the topk_group-th and next group score, must be >= 1e-4;
otherwise the weights are redrawn with seed + 1000, + 2000, ... (said on stderr).

Weights: numpy default_rng(seed), drawn in the order of hf_tensors(); Linear / embedding /
router ~ N(0, std) (0.15, embedding 1.0, router 0.3), biases and e_score_correction_bias
~ N(0, 0.1), norm weights 1 + N(0, 0.1); all rounded to the storage dtype (the bias of
deepseek_v3's router stays f32, as in the released checkpoint) before the forward pass.

Known differences between these files and a stock llama.cpp build (uncertain points included):
- qwen2moe / qwen3moe in llama.cpp want an MoE block in every layer and their tensor lists have
  no dense ffn_gate/ffn_up/ffn_down; the converter would refuse the dense layers of the qwen2_moe
  and qwen3_moe cases. We write them as blk.N.ffn_{gate,up,down}.weight (the name llama.cpp uses
  for dense layers elsewhere). Use overrides {"mlp_only_layers": []} / {"decoder_sparse_step": 1}
  for files a stock llama.cpp loads.
- olmoe: clip_qkv is not representable in GGUF (not written by the converter, not applied by
  llama.cpp); use overrides {"clip_qkv": null} for GGUF logits that match. llama.cpp also makes
  attn_k_norm n_embd wide, so OLMoE GGUFs need num_key_value_heads == num_attention_heads.
- deepseek2 in llama.cpp scores groups by the sum of the top 2 (V3 rule) for every model with
  expert_group_count > 1, so V2's group_limited_greedy (max) is not what llama.cpp runs.
- qwen3moe: llama.cpp always renormalises (no expert_weights_norm key is written); qwen2moe and
  olmoe never do. Matches the cases' norm_topk_prob values.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import run  # noqa: E402
from model_arch_gguf import write_gguf  # noqa: E402
from model_arch_math import forward, is_sparse_layer  # noqa: E402
from model_arch_safetensors import STORAGE, round_to, write_checkpoint  # noqa: E402

TIE_GAP = 1e-4
SEED_STEP = 1000
MAX_REDRAWS = 50

_COMMON = {"attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
           "hidden_size": 64, "initializer_range": 0.02, "tie_word_embeddings": False,
           "use_cache": True, "transformers_version": "4.46.0"}
_QWEN = {"max_window_layers": 0, "sliding_window": None, "use_sliding_window": False,
         "output_router_logits": False, "router_aux_loss_coef": 0.001, "rope_scaling": None}
_DEEPSEEK = {"attention_bias": False, "aux_loss_alpha": 0.001, "seq_aux": True, "pretraining_tp": 1,
             "num_attention_heads": 4, "num_key_value_heads": 4, "kv_lora_rank": 32,
             "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16,
             "moe_intermediate_size": 32, "intermediate_size": 96, "moe_layer_freq": 1,
             "first_k_dense_replace": 1, "num_hidden_layers": 3, "rms_norm_eps": 1e-6,
             "rope_theta": 10000.0}

CASES = {
    "mixtral": dict(_COMMON, architectures=["MixtralForCausalLM"], model_type="mixtral",
                    vocab_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, intermediate_size=32, num_local_experts=8,
                    num_experts_per_tok=2, max_position_embeddings=256, rms_norm_eps=1e-5,
                    rope_theta=1e6, sliding_window=None, router_aux_loss_coef=0.02,
                    router_jitter_noise=0.0, output_router_logits=False),
    "qwen2_moe": dict(_COMMON, **_QWEN, architectures=["Qwen2MoeForCausalLM"],
                      model_type="qwen2_moe", vocab_size=136, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, intermediate_size=96,
                      moe_intermediate_size=32, shared_expert_intermediate_size=48,
                      num_experts=8, num_experts_per_tok=2, norm_topk_prob=False,
                      decoder_sparse_step=1, mlp_only_layers=[1], qkv_bias=True,
                      max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=1e6),
    "qwen3_moe": dict(_COMMON, **_QWEN, architectures=["Qwen3MoeForCausalLM"],
                      model_type="qwen3_moe", vocab_size=152, num_hidden_layers=4,
                      num_attention_heads=6, num_key_value_heads=2, head_dim=16,
                      attention_bias=False, intermediate_size=80, moe_intermediate_size=32,
                      num_experts=8, num_experts_per_tok=3, norm_topk_prob=True,
                      decoder_sparse_step=2, mlp_only_layers=[], max_position_embeddings=256,
                      rms_norm_eps=1e-6, rope_theta=1e6),
    "olmoe": dict(_COMMON, architectures=["OlmoeForCausalLM"], model_type="olmoe",
                  vocab_size=112, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=4, attention_bias=False, intermediate_size=32,
                  num_experts=8, num_experts_per_tok=2, norm_topk_prob=False, clip_qkv=0.5,
                  max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0,
                  rope_scaling=None, output_router_logits=False, router_aux_loss_coef=0.01,
                  pad_token_id=1),
    "deepseek_v2_lite": dict(_COMMON, **_DEEPSEEK, architectures=["DeepseekV2ForCausalLM"],
                             model_type="deepseek_v2", vocab_size=120, q_lora_rank=None,
                             n_routed_experts=8, n_shared_experts=2, num_experts_per_tok=3,
                             topk_method="greedy", n_group=1, topk_group=1,
                             scoring_func="softmax", norm_topk_prob=False,
                             routed_scaling_factor=1.0, rope_scaling=None,
                             max_position_embeddings=256),
    "deepseek_v2": dict(_COMMON, **_DEEPSEEK, architectures=["DeepseekV2ForCausalLM"],
                        model_type="deepseek_v2", vocab_size=144, q_lora_rank=24,
                        n_routed_experts=8, n_shared_experts=2, num_experts_per_tok=3,
                        topk_method="group_limited_greedy", n_group=4, topk_group=2,
                        scoring_func="softmax", norm_topk_prob=False, routed_scaling_factor=16.0,
                        rope_scaling={"type": "yarn", "factor": 4.0,
                                      "original_max_position_embeddings": 512, "beta_fast": 32,
                                      "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
                        max_position_embeddings=2048),
    "deepseek_v3": dict(_COMMON, **_DEEPSEEK, architectures=["DeepseekV3ForCausalLM"],
                        model_type="deepseek_v3", vocab_size=160, q_lora_rank=24,
                        n_routed_experts=16, n_shared_experts=1, num_experts_per_tok=4,
                        topk_method="noaux_tc", n_group=4, topk_group=2, scoring_func="sigmoid",
                        norm_topk_prob=True, routed_scaling_factor=2.5, ep_size=1,
                        num_nextn_predict_layers=0,
                        rope_scaling={"type": "yarn", "factor": 4.0,
                                      "original_max_position_embeddings": 4096, "beta_fast": 32,
                                      "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
                        max_position_embeddings=16384),
}

STD = {"linear": 0.15, "embed": 1.0, "router": 0.3, "bias": 0.1}


def hf_tensors(cfg):
    """(name, shape, kind) of every HF tensor, in state-dict order."""
    arch = cfg["model_type"]
    d, v = cfg["hidden_size"], cfg["vocab_size"]
    h, hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or d // h
    specs = [("model.embed_tokens.weight", [v, d], "embed")]

    def lin(name, out, inp, kind="linear"):
        specs.append((name + ".weight", [out, inp], kind))

    def mlp(prefix, width):
        lin(prefix + "gate_proj", width, d)
        lin(prefix + "up_proj", width, d)
        lin(prefix + "down_proj", d, width)

    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.{}.".format(i)
        s = p + "self_attn."
        specs.append((p + "input_layernorm.weight", [d], "norm"))
        if arch.startswith("deepseek"):
            nope, rope, vd = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
            r, qr = cfg["kv_lora_rank"], cfg.get("q_lora_rank")
            if qr is None:
                lin(s + "q_proj", h * (nope + rope), d)
            else:
                lin(s + "q_a_proj", qr, d)
                specs.append((s + "q_a_layernorm.weight", [qr], "norm"))
                lin(s + "q_b_proj", h * (nope + rope), qr)
            lin(s + "kv_a_proj_with_mqa", r + rope, d)
            specs.append((s + "kv_a_layernorm.weight", [r], "norm"))
            lin(s + "kv_b_proj", h * (nope + vd), r)
            lin(s + "o_proj", d, h * vd)
        else:
            for proj, heads in (("q_proj", h), ("k_proj", hkv), ("v_proj", hkv)):
                lin(s + proj, heads * hd, d)
                if arch == "qwen2_moe" and cfg.get("qkv_bias", True):
                    specs.append((s + proj + ".bias", [heads * hd], "bias"))
            lin(s + "o_proj", d, h * hd)
            if arch == "qwen3_moe":
                specs += [(s + "q_norm.weight", [hd], "norm"), (s + "k_norm.weight", [hd], "norm")]
            if arch == "olmoe":
                specs += [(s + "q_norm.weight", [h * hd], "norm"),
                          (s + "k_norm.weight", [hkv * hd], "norm")]
        specs.append((p + "post_attention_layernorm.weight", [d], "norm"))
        if arch == "mixtral":
            m = p + "block_sparse_moe."
            f = cfg["intermediate_size"]
            lin(m + "gate", cfg["num_local_experts"], d, "router")
            for j in range(cfg["num_local_experts"]):
                e = m + "experts.{}.".format(j)
                lin(e + "w1", f, d)
                lin(e + "w2", d, f)
                lin(e + "w3", f, d)
            continue
        m = p + "mlp."
        if not is_sparse_layer(cfg, i):
            mlp(m, cfg["intermediate_size"])
            continue
        n = cfg.get("num_experts") or cfg["n_routed_experts"]
        f = cfg["intermediate_size"] if arch == "olmoe" else cfg["moe_intermediate_size"]
        lin(m + "gate", n, d, "router")
        if cfg.get("topk_method") == "noaux_tc":
            specs.append((m + "gate.e_score_correction_bias", [n], "bias_f32"))
        for j in range(n):
            mlp(m + "experts.{}.".format(j), f)
        if arch == "qwen2_moe":
            mlp(m + "shared_expert.", cfg["shared_expert_intermediate_size"])
            lin(m + "shared_expert_gate", 1, d)
        if arch.startswith("deepseek") and cfg.get("n_shared_experts"):
            mlp(m + "shared_experts.", cfg["moe_intermediate_size"] * cfg["n_shared_experts"])
    specs.append(("model.norm.weight", [d], "norm"))
    lin("lm_head", v, d)
    return specs


def draw_weights(cfg, seed, dtype):
    """name -> (storage dtype, float64 tensor holding exactly the stored values)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape, kind in hf_tensors(cfg):
        z = torch.from_numpy(rng.standard_normal(shape))
        if kind == "norm":
            t = 1.0 + 0.1 * z
        elif kind in ("bias", "bias_f32"):
            t = STD["bias"] * z
        elif kind == "linear":
            # 0.15 at the cases' width 64 (fan-in 64); wider overrides keep the same gain per
            # layer (std * sqrt(fan_in) constant) so logits stay O(1) instead of blowing up.
            t = STD[kind] * min(1.0, (64.0 / shape[-1]) ** 0.5) * z
        else:
            t = STD[kind] * z
        store = "f32" if kind == "bias_f32" else dtype
        out[name] = (store, round_to(t, store))
    return out


def compute(inputs, params):
    del inputs  # the cases have no input tensors
    case = params["case"]
    if case not in CASES:
        raise ValueError("model_arch: unknown case '{}', expected one of {}".format(
            case, sorted(CASES)))
    cfg = dict(CASES[case])
    cfg.update(params.get("overrides", {}))
    dtype = params.get("dtype", "f32")
    if dtype not in STORAGE:
        raise ValueError("model_arch: dtype '{}', expected one of {}".format(
            dtype, sorted(STORAGE)))
    cfg["torch_dtype"] = STORAGE[dtype][1]
    tokens = [int(t) for t in params["tokens"]]
    if not tokens or min(tokens) < 0 or max(tokens) >= cfg["vocab_size"]:
        raise ValueError("model_arch: tokens {} outside [0, {})".format(tokens, cfg["vocab_size"]))
    seed = int(params["seed"])
    for attempt in range(MAX_REDRAWS):
        stored = draw_weights(cfg, seed, dtype)
        W = {name: t for name, (_, t) in stored.items()}
        with torch.no_grad():
            logits, margins = forward(cfg, W, tokens)
        if margins.worst() >= TIE_GAP:
            break
        print("model_arch: case {} seed {}: routing margin {:.3g} (expert {:.3g}, group {:.3g}, "
              "choice {:.3g}) < {}; redrawing with seed {}".format(
                  case, seed, margins.worst(), margins.expert_gap, margins.group_gap,
                  margins.min_choice, TIE_GAP, seed + SEED_STEP), file=sys.stderr)
        seed += SEED_STEP
    else:
        raise RuntimeError("model_arch: case {}: no tie-free weights in {} draws".format(
            case, MAX_REDRAWS))
    folder = params["dir"]
    os.makedirs(folder, exist_ok=True)
    entries = [(name, stored[name][0], stored[name][1]) for name, _, _ in hf_tensors(cfg)]
    write_checkpoint(folder, cfg, entries, int(params.get("shards", 1)))
    if params.get("gguf", True):
        write_gguf(os.path.join(folder, "model.gguf"), case, cfg, W)
    return {"logits": logits, "seed": torch.tensor([seed], dtype=torch.int64)}


if __name__ == "__main__":
    run(compute)
