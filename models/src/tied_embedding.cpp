#include "tied_embedding.hpp"

#include <torch/torch.h>

namespace troupe::models {
namespace {

struct TiedEmbeddingFunction : torch::autograd::Function<TiedEmbeddingFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& weight,
                                                const torch::Tensor& ids) {
    ctx->save_for_backward({ids});
    ctx->saved_data["rows"] = weight.size(0);
    auto embeddings = weight.index_select(0, ids.reshape({-1})).view({ids.size(0), ids.size(1), weight.size(1)});
    return {embeddings, weight.view_as(weight)};  // (B, T, E), (V, E)
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto ids = ctx->get_saved_variables()[0].reshape({-1});  // (B * T)
    const auto& grad_embeddings = grads[0];                         // (B, T, E) or undefined
    // The head's gradient is this node's to consume: nothing else reads it after here.
    torch::Tensor grad_weight = grads[1].defined()
                                    ? grads[1].contiguous()
                                    : torch::zeros({ctx->saved_data["rows"].toInt(), grad_embeddings.size(-1)},
                                                   grad_embeddings.options());  // (V, E)
    if (grad_embeddings.defined())
      grad_weight.index_add_(0, ids, grad_embeddings.reshape({-1, grad_weight.size(1)}).to(grad_weight.scalar_type()));
    return {grad_weight, torch::Tensor()};
  }
};

}  // namespace

TiedLookup tied_embedding_lookup(const torch::Tensor& weight, const torch::Tensor& ids) {
  auto out = TiedEmbeddingFunction::apply(weight, ids);
  return {out[0], out[1]};
}

}  // namespace troupe::models
