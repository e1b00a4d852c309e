"""GGUF v3 writer for the tiny MoE models, reproducing what llama.cpp's convert_hf_to_gguf.py
writes for each HF architecture (metadata keys, tensor names, transformations), all tensors f32.

File layout (ggml docs/gguf.md): "GGUF", u32 version 3, u64 tensor count, u64 kv count; each kv
is (u64 length + key bytes, u32 value type, value); each tensor info is (name, u32 n_dims, u64
ne[n_dims] with ne[0] the innermost = reversed PyTorch shape, u32 ggml type 0 = F32, u64 offset
from the data start); zero padding to the alignment (32, general.alignment not written, as the
converter does); tensor data, each tensor zero-padded to 32 bytes (the last one too, as
gguf-py's GGUFWriter does).

Converter facts reproduced (llama.cpp convert_hf_to_gguf.py / conversion/*.py, gguf-py
constants.py + tensor_mapping.py):
- TextModel.set_gguf_parameters: block_count, context_length (max_position_embeddings),
  embedding_length, feed_forward_length (intermediate_size), attention.head_count,
  attention.head_count_kv, YaRN rope.scaling.{type,factor,original_context_length,
  yarn_beta_fast,yarn_beta_slow} when rope_scaling type is yarn, rope.freq_base,
  attention.layer_norm_rms_epsilon, expert_count (num_local_experts | num_experts),
  expert_used_count, expert_group_count (n_group), expert_group_used_count (topk_group),
  expert_gating_func (scoring_func: softmax 1, sigmoid 2), attention.key_length/value_length
  (head_dim), general.file_type (0 = all f32).
- Mixtral -> arch "llama" (LlamaModel): + vocab_size, rope.dimension_count (head_dim); q_proj
  and k_proj rows permuted per head (see permute_llama); experts w1/w3/w2 stacked into
  ffn_gate_exps/ffn_up_exps/ffn_down_exps.
- Qwen2MoeModel: + expert_feed_forward_length, expert_shared_feed_forward_length.
  Qwen3MoeModel: the same class (shared length only when the config has it).
- OlmoeModel: + layer_norm_rms_epsilon forced to 1e-5, expert_count (num_experts). clip_qkv is
  NOT written (llama.cpp's olmoe graph has no clamp).
- DeepseekV2Model (V2, V2-Lite, V3 -> "deepseek2"): head_count_kv forced to 1 (MLA as MQA);
  + leading_dense_block_count, vocab_size, attention.q_lora_rank (when not null),
  attention.kv_lora_rank, attention.key_length = kv_lora_rank + qk_rope_head_dim,
  attention.value_length = kv_lora_rank, attention.key_length_mla = nope + rope,
  attention.value_length_mla = v_head_dim, expert_feed_forward_length, expert_count
  (n_routed_experts), expert_shared_count, expert_weights_scale (routed_scaling_factor),
  expert_weights_norm (only when norm_topk_prob is true), rope.dimension_count
  (qk_rope_head_dim), rope.scaling.yarn_log_multiplier = 0.1 * mscale_all_dim (llama.cpp divides
  it by 0.1 again on load). kv_b_proj [H*(nope+v), r] is split per head into
  attn_k_b = k part transposed, torch [H, r, nope] (ggml ne [nope, r, H]), and
  attn_v_b = v part, torch [H, v, r] (ggml ne [r, v, H]); attn_kv_b is not written.
- Other keys: general.architecture, general.type "model", general.name, and
  general.quantization_version 2; no tokenizer.* keys (the logits path needs none).
"""
import struct

import numpy as np

from model_arch_safetensors import write_atomic

ALIGNMENT = 32
U32, F32, BOOL, STR = 4, 6, 7, 8

ARCH = {
    "mixtral": "llama",
    "qwen2_moe": "qwen2moe",
    "qwen3_moe": "qwen3moe",
    "olmoe": "olmoe",
    "deepseek_v2": "deepseek2",
    "deepseek_v3": "deepseek2",
}


def _string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _value(vtype, v):
    if vtype == U32:
        return struct.pack("<I", v)
    if vtype == F32:
        return struct.pack("<f", v)
    if vtype == BOOL:
        return struct.pack("<B", 1 if v else 0)
    if vtype == STR:
        return _string(v)
    raise ValueError(vtype)


def gguf_bytes(kvs, tensors):
    """kvs: list of (key, type, value); tensors: list of (name, float32 array, PyTorch order)."""
    out = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(kvs))]
    for key, vtype, v in kvs:
        out += [_string(key), struct.pack("<I", vtype), _value(vtype, v)]
    blobs, offset = [], 0
    for name, arr in tensors:
        ne = list(reversed(arr.shape))
        out += [_string(name), struct.pack("<I", len(ne)), struct.pack("<{}Q".format(len(ne)), *ne),
                struct.pack("<IQ", 0, offset)]
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        data += b"\0" * (-len(data) % ALIGNMENT)
        blobs.append(data)
        offset += len(data)
    head = b"".join(out)
    head += b"\0" * (-len(head) % ALIGNMENT)
    return head + b"".join(blobs)


# ---- metadata ---------------------------------------------------------------------------------


def metadata(case, cfg):
    arch = ARCH[cfg["model_type"]]
    deepseek = arch == "deepseek2"
    kv = [("general.architecture", STR, arch), ("general.type", STR, "model"),
          ("general.name", STR, "switchyard-tiny-" + case)]

    def add(key, vtype, value):
        key = key.format(arch=arch)
        for i, (k, _, _) in enumerate(kv):
            if k == key:  # GGUFWriter overwrites a repeated key
                kv[i] = (key, vtype, value)
                return
        kv.append((key, vtype, value))

    head_count_kv = 1 if deepseek else cfg["num_key_value_heads"]
    add("{arch}.block_count", U32, cfg["num_hidden_layers"])
    add("{arch}.context_length", U32, cfg["max_position_embeddings"])
    add("{arch}.embedding_length", U32, cfg["hidden_size"])
    add("{arch}.feed_forward_length", U32, cfg["intermediate_size"])
    add("{arch}.attention.head_count", U32, cfg["num_attention_heads"])
    add("{arch}.attention.head_count_kv", U32, head_count_kv)
    rs = cfg.get("rope_scaling")
    if rs is not None and rs.get("type") == "yarn":
        add("{arch}.rope.scaling.type", STR, "yarn")
        add("{arch}.rope.scaling.factor", F32, rs["factor"])
        add("{arch}.rope.scaling.original_context_length", U32,
            rs["original_max_position_embeddings"])
        if "beta_fast" in rs:
            add("{arch}.rope.scaling.yarn_beta_fast", F32, rs["beta_fast"])
        if "beta_slow" in rs:
            add("{arch}.rope.scaling.yarn_beta_slow", F32, rs["beta_slow"])
    add("{arch}.rope.freq_base", F32, cfg["rope_theta"])
    add("{arch}.attention.layer_norm_rms_epsilon", F32, cfg["rms_norm_eps"])
    experts = cfg.get("num_local_experts", cfg.get("num_experts"))
    if experts is not None:
        add("{arch}.expert_count", U32, experts)
    add("{arch}.expert_used_count", U32, cfg["num_experts_per_tok"])
    if cfg.get("n_group") is not None:
        add("{arch}.expert_group_count", U32, cfg["n_group"])
    if cfg.get("topk_group") is not None:
        add("{arch}.expert_group_used_count", U32, cfg["topk_group"])
    if cfg.get("scoring_func") is not None:
        add("{arch}.expert_gating_func", U32, {"softmax": 1, "sigmoid": 2}[cfg["scoring_func"]])
    if cfg.get("head_dim") is not None:
        add("{arch}.attention.key_length", U32, cfg["head_dim"])
        add("{arch}.attention.value_length", U32, cfg["head_dim"])
    add("general.file_type", U32, 0)

    if arch == "llama":
        add("{arch}.vocab_size", U32, cfg["vocab_size"])
        add("{arch}.rope.dimension_count", U32,
            cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"])
    elif arch in ("qwen2moe", "qwen3moe"):
        add("{arch}.expert_feed_forward_length", U32, cfg["moe_intermediate_size"])
        if cfg.get("shared_expert_intermediate_size") is not None:
            add("{arch}.expert_shared_feed_forward_length", U32,
                cfg["shared_expert_intermediate_size"])
    elif arch == "olmoe":
        add("{arch}.attention.layer_norm_rms_epsilon", F32, 1e-5)
        add("{arch}.expert_count", U32, cfg["num_experts"])
    else:
        r = cfg["kv_lora_rank"]
        add("{arch}.leading_dense_block_count", U32, cfg["first_k_dense_replace"])
        add("{arch}.vocab_size", U32, cfg["vocab_size"])
        if cfg.get("q_lora_rank") is not None:
            add("{arch}.attention.q_lora_rank", U32, cfg["q_lora_rank"])
        add("{arch}.attention.kv_lora_rank", U32, r)
        add("{arch}.attention.key_length", U32, r + cfg["qk_rope_head_dim"])
        add("{arch}.attention.value_length", U32, r)
        add("{arch}.attention.key_length_mla", U32,
            cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"])
        add("{arch}.attention.value_length_mla", U32, cfg["v_head_dim"])
        add("{arch}.expert_feed_forward_length", U32, cfg["moe_intermediate_size"])
        add("{arch}.expert_count", U32, cfg["n_routed_experts"])
        add("{arch}.expert_shared_count", U32, cfg.get("n_shared_experts") or 0)
        if cfg.get("routed_scaling_factor") is not None:
            add("{arch}.expert_weights_scale", F32, cfg["routed_scaling_factor"])
        if cfg.get("norm_topk_prob"):
            add("{arch}.expert_weights_norm", BOOL, True)
        add("{arch}.rope.dimension_count", U32, cfg["qk_rope_head_dim"])
        if rs is not None and rs.get("mscale_all_dim") is not None:
            add("{arch}.rope.scaling.yarn_log_multiplier", F32, 0.1 * rs["mscale_all_dim"])
    add("general.quantization_version", U32, 2)
    return kv


# ---- tensors ----------------------------------------------------------------------------------


def permute_llama(w, n_head):
    """convert_hf_to_gguf LlamaModel.permute: within each head, row j*half + i moves to 2i + j, so
    llama.cpp's interleaved (GPT-J, "normal") RoPE on the pairs (2i, 2i+1) turns the same pairs
    (i, i+half) that HF's rotate_half turns. w: [n_head * head_dim, in] (k: n_head = kv heads)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2)
            .reshape(w.shape))


def split_kv_b(w, cfg):
    """kv_b_proj [H*(nope+v), r] -> (k_b [H, r, nope], v_b [H, v, r]) as the converter does."""
    h, nope, vd = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["v_head_dim"]
    kv_b = w.reshape(h, nope + vd, w.shape[-1])
    return np.ascontiguousarray(kv_b[:, :nope, :].transpose(0, 2, 1)), kv_b[:, nope:, :]


def gguf_tensors(cfg, W):
    """(gguf name, float32 array in PyTorch order) for every tensor, from the HF weights."""
    arch = cfg["model_type"]
    out = []

    def a(name):
        return W[name].numpy().astype(np.float32)

    def put(gname, hname):
        out.append((gname, a(hname)))

    def stack(gname, names):
        out.append((gname, np.stack([a(n) for n in names])))

    put("token_embd.weight", "model.embed_tokens.weight")
    for i in range(cfg["num_hidden_layers"]):
        p, b = "model.layers.{}.".format(i), "blk.{}.".format(i)
        s = p + "self_attn."
        put(b + "attn_norm.weight", p + "input_layernorm.weight")
        if arch.startswith("deepseek"):
            if cfg.get("q_lora_rank") is None:
                put(b + "attn_q.weight", s + "q_proj.weight")
            else:
                put(b + "attn_q_a.weight", s + "q_a_proj.weight")
                put(b + "attn_q_a_norm.weight", s + "q_a_layernorm.weight")
                put(b + "attn_q_b.weight", s + "q_b_proj.weight")
            put(b + "attn_kv_a_mqa.weight", s + "kv_a_proj_with_mqa.weight")
            put(b + "attn_kv_a_norm.weight", s + "kv_a_layernorm.weight")
            k_b, v_b = split_kv_b(a(s + "kv_b_proj.weight"), cfg)
            out.append((b + "attn_k_b.weight", k_b))
            out.append((b + "attn_v_b.weight", v_b))
        else:
            for proj, g in (("q_proj", "attn_q"), ("k_proj", "attn_k"), ("v_proj", "attn_v")):
                if arch == "mixtral" and proj != "v_proj":
                    heads = cfg["num_attention_heads" if proj == "q_proj" else
                                "num_key_value_heads"]
                    out.append((b + g + ".weight", permute_llama(a(s + proj + ".weight"), heads)))
                else:
                    put(b + g + ".weight", s + proj + ".weight")
                if s + proj + ".bias" in W:
                    put(b + g + ".bias", s + proj + ".bias")
            if arch in ("qwen3_moe", "olmoe"):
                put(b + "attn_q_norm.weight", s + "q_norm.weight")
                put(b + "attn_k_norm.weight", s + "k_norm.weight")
        put(b + "attn_output.weight", s + "o_proj.weight")
        put(b + "ffn_norm.weight", p + "post_attention_layernorm.weight")
        if arch == "mixtral":
            m = p + "block_sparse_moe."
            e = range(cfg["num_local_experts"])
            put(b + "ffn_gate_inp.weight", m + "gate.weight")
            for w, g in (("w1", "ffn_gate_exps"), ("w3", "ffn_up_exps"), ("w2", "ffn_down_exps")):
                stack(b + g + ".weight", [m + "experts.{}.{}.weight".format(j, w) for j in e])
            continue
        m = p + "mlp."
        if m + "gate.weight" not in W:  # dense layer
            for proj in ("gate", "up", "down"):
                put(b + "ffn_{}.weight".format(proj), m + proj + "_proj.weight")
            continue
        put(b + "ffn_gate_inp.weight", m + "gate.weight")
        if m + "gate.e_score_correction_bias" in W:
            put(b + "exp_probs_b.bias", m + "gate.e_score_correction_bias")
        e = range(cfg.get("num_experts") or cfg.get("n_routed_experts"))
        for proj in ("gate", "up", "down"):
            stack(b + "ffn_{}_exps.weight".format(proj),
                  [m + "experts.{}.{}_proj.weight".format(j, proj) for j in e])
        shared = {"qwen2_moe": "shared_expert.", "deepseek_v2": "shared_experts.",
                  "deepseek_v3": "shared_experts."}.get(arch)
        if shared is not None and m + shared + "up_proj.weight" in W:
            if arch == "qwen2_moe":
                put(b + "ffn_gate_inp_shexp.weight", m + "shared_expert_gate.weight")
            for proj in ("gate", "up", "down"):
                put(b + "ffn_{}_shexp.weight".format(proj), m + shared + proj + "_proj.weight")
    put("output_norm.weight", "model.norm.weight")
    put("output.weight", "lm_head.weight")
    return out


def write_gguf(path, case, cfg, W):
    write_atomic(path, gguf_bytes(metadata(case, cfg), gguf_tensors(cfg, W)))
