// The demo corpus against its intended use: the scorer from many threads at once, and
// (hidden, "[.demo_tokens]") token lengths under a BPE tokenizer trained on the corpus.
#include <algorithm>
#include <cstdio>
#include <thread>

#include <catch2/catch.hpp>

#include <troupe/data/demo_corpus.hpp>
#include <troupe/data/demo_gold.hpp>
#include <troupe/models/bpe_trainer.hpp>

using namespace troupe::data;

TEST_CASE("demo gold: scoring from several threads gives the single-thread scores", "[data][demo]") {
  DemoOptions options;
  options.train_pairs = 800;
  options.eval_pairs = options.prompts = options.unsupervised_docs = 0;
  const auto pairs = generate_demo_corpus(options).train;
  std::vector<double> expected;
  for (const auto& p : pairs) expected.push_back(gold_score(p.prompt, p.rejected));

  std::vector<std::vector<double>> results(4);
  std::vector<std::thread> threads;
  for (auto& out : results)
    threads.emplace_back([&pairs, &out] {
      for (const auto& p : pairs) out.push_back(gold_score(p.prompt, p.rejected));
    });
  for (auto& t : threads) t.join();
  for (const auto& out : results) CHECK(out == expected);
}

TEST_CASE("demo corpus: token lengths under a corpus-trained BPE tokenizer", "[.demo_tokens]") {
  const auto corpus = generate_demo_corpus(DemoOptions{});
  std::vector<std::string> texts;
  for (const auto& p : corpus.train) {
    texts.push_back(p.prompt + p.chosen);
    texts.push_back(p.prompt + p.rejected);
  }
  texts.insert(texts.end(), corpus.unsupervised.begin(), corpus.unsupervised.end());
  troupe::models::BpeTrainerOptions bpe;
  bpe.vocab_size = 1024;
  bpe.special_tokens = {"<|endoftext|>"};
  const auto tokenizer = troupe::models::train_bpe_tokenizer(texts, bpe);

  auto percentile = [](std::vector<size_t> v, double q) {
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
  };
  std::vector<size_t> prompt_len, chosen_len, rejected_len, unsup_len;
  for (const auto& p : corpus.train) {
    prompt_len.push_back(tokenizer->encode(p.prompt).size());
    chosen_len.push_back(tokenizer->encode(p.chosen).size());
    rejected_len.push_back(tokenizer->encode(p.rejected).size());
  }
  size_t unsup_tokens = 0;
  for (const auto& t : corpus.unsupervised) unsup_tokens += tokenizer->encode(t).size();
  for (const auto& [name, v] : {std::pair{"prompt", prompt_len}, {"chosen", chosen_len}, {"rejected", rejected_len}})
    std::printf("%-9s tokens: p50 %zu  p90 %zu  max %zu\n", name, percentile(v, 0.5), percentile(v, 0.9),
                percentile(v, 1.0));
  std::printf("unsupervised tokens in all: %zu\n", unsup_tokens);
  // The README's sizing: prompts fit max_prompt_seq_len 32, replies max_answer_seq_len 32.
  CHECK(percentile(prompt_len, 1.0) <= 32);
  CHECK(percentile(rejected_len, 1.0) <= 32);
  CHECK(percentile(chosen_len, 1.0) <= 32);
}
