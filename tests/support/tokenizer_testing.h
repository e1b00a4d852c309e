// tokenizer.json documents for the tokenizer tests.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace sy::test {

// A TemplateProcessing post-processor that puts the special token `token` (id `id`) before a
// single sequence.
nlohmann::json prepend_token_post_processor(const std::string& token, int id);

// A tokenizer.json in the layout Hugging Face writes for SentencePiece BPE models (Llama 2,
// Mixtral): a normalizer that prepends "▁" and turns spaces into "▁", no pre-tokenizer, a
// post-processor that puts <s> (id 1) before a sequence, a decoder that turns "▁" back into
// spaces, byte tokens (<0xAB>) into bytes and strips one leading space, and a BPE model with
// unk_token <unk>, fuse_unk and byte_fallback over `vocab` (piece -> id) and `merges`.
// added_tokens: <unk> <s> </s> as ids 0-2, all special.
nlohmann::json spm_bpe_tokenizer_json(nlohmann::json vocab, nlohmann::json merges);

}  // namespace sy::test
