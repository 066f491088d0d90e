/// The tensors of each family, in the shapes models/src/{opt,gpt2,llama}.cpp build.
#include <troupe/placement/model_tensors.hpp>

namespace troupe::placement {
namespace {

class Builder {
 public:
  Builder(ModelTensors& out, int64_t lora_dim) : out_(out), lora_dim_(lora_dim) {}

  /// A linear layer `in` -> `out`; with a parameter unless it is a tied head.
  void linear(int64_t out, int64_t in, bool bias, int64_t layer, int split, bool tied = false) {
    out_.linears.push_back({out, in, bias, layer, split});
    if (!tied) out_.parameters.push_back({out * in, 2, layer, true, false});
    if (bias) vector(out, layer);
    if (layer >= 0 && lora_dim_ > 0) {  // A (r, in) and B (out, r)
      out_.parameters.push_back({lora_dim_ * in, 2, layer, false, true});
      out_.parameters.push_back({out * lora_dim_, 2, layer, false, true});
    }
  }
  void matrix(int64_t rows, int64_t cols, int64_t layer = -1) { out_.parameters.push_back({rows * cols, 2, layer, false, false}); }
  void vector(int64_t size, int64_t layer = -1) { out_.parameters.push_back({size, 1, layer, false, false}); }
  void norm(int64_t size, int64_t layer, bool bias) {
    vector(size, layer);
    if (bias) vector(size, layer);
  }

 private:
  ModelTensors& out_;
  int64_t lora_dim_;
};

}  // namespace

ModelTensors model_tensors(const ModelShape& s, Head head, int64_t lora_dim) {
  ModelTensors out;
  Builder b(out, lora_dim);
  const int64_t h = s.hidden, i = s.intermediate, q = s.heads * s.head_dim, kv = s.kv_heads * s.head_dim;
  const int64_t e = s.embed_dim ? s.embed_dim : s.hidden;
  int64_t out_width = h;
  switch (s.architecture) {
    case Architecture::Opt:
      b.matrix(s.vocab, e);
      b.matrix(s.max_positions + 2, h);  // learned positions start at offset 2
      if (e != h) {
        b.linear(e, h, false, -1, -1);  // project_out
        b.linear(h, e, false, -1, -1);  // project_in
      }
      if (s.final_norm) b.norm(h, -1, true);
      for (int64_t l = 0; l < s.layers; ++l) {
        for (int k = 0; k < 3; ++k) b.linear(h, h, true, l, 0);  // k, v, q
        b.linear(h, h, true, l, 1);                              // out_proj
        b.norm(h, l, true);
        b.linear(i, h, true, l, 0);  // fc1
        b.linear(h, i, true, l, 1);  // fc2
        b.norm(h, l, true);
      }
      out_width = e;
      break;
    case Architecture::Gpt2:
      b.matrix(s.vocab, h);
      b.matrix(s.max_positions, h);
      for (int64_t l = 0; l < s.layers; ++l) {
        b.norm(h, l, true);
        b.linear(3 * h, h, true, l, 0);  // c_attn
        b.linear(h, h, true, l, 1);      // attn c_proj
        b.norm(h, l, true);
        b.linear(i, h, true, l, 0);  // c_fc
        b.linear(h, i, true, l, 1);  // mlp c_proj
      }
      b.norm(h, -1, true);
      break;
    case Architecture::Llama:
      b.matrix(s.vocab, h);
      for (int64_t l = 0; l < s.layers; ++l) {
        b.linear(q, h, false, l, 0);
        b.linear(kv, h, false, l, 0);
        b.linear(kv, h, false, l, 0);
        b.linear(h, q, false, l, 1);  // o_proj
        b.linear(i, h, false, l, 0);  // gate
        b.linear(i, h, false, l, 0);  // up
        b.linear(h, i, false, l, 1);  // down
        b.norm(h, l, false);
        b.norm(h, l, false);
      }
      b.norm(h, -1, false);
      break;
  }
  // The LM head; a value model keeps it unused (and untrained), then adds v_head.
  b.linear(s.vocab, out_width, false, -1, -1, /*tied=*/s.tied_embeddings);
  if (head == Head::Value) {
    if (!s.tied_embeddings) out.parameters.back().gets_gradient = false;
    b.linear(1, out_width, false, -1, -1);  // v_head
  }
  return out;
}

}  // namespace troupe::placement
