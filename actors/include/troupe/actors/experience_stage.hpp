#pragma once
/// The RL algorithm's place in a step-3 cycle, between scoring and training: it turns
/// the cycle's experience (tickets of the generated sequences and their four scores)
/// into training batches, and returns where they are with its metrics. It pulls and
/// publishes through a TicketStore; the controller only passes tickets.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <troupe/actors/ticket_store.hpp>
#include <troupe/rl/experience.hpp>

namespace troupe::rl {
class Algorithm;
}

namespace troupe::actors {

/// Where the experience of one cycle lives.
struct ExperienceTickets {
  TicketList prompts;       ///< input_ids, attention_mask (B, T0)
  TicketList sequences;     ///< policy.generate: sequences, attention_mask (B, T), prompt_length (B)
  TicketList logprobs;      ///< policy.score: logprobs (B, T-1), the old policy's
  TicketList ref_logprobs;  ///< reference.score: ref_logprobs (B, T-1)
  TicketList values;        ///< critic.score: values (B, T-1); empty without a critic
  TicketList rewards;       ///< reward.score: reward_score (B)
};

/// The experience the tickets name, on the device of the log-probs. `values` stays
/// undefined when the tickets have none.
rl::Experience fetch_experience(TicketStore& store, const ExperienceTickets& tickets);

/// Releases every ticket of `tickets` (the batches are consumed).
void release_tickets(TicketStore& store, const ExperienceTickets& tickets);
void release_tickets(TicketStore& store, const std::vector<TicketList>& lists);

struct StageResult {
  std::vector<TicketList> training;       ///< what policy.train and critic.train read
  std::map<std::string, double> metrics;  ///< logged with the cycle's
};

class ExperienceStage {
 public:
  virtual ~ExperienceStage() = default;
  /// One cycle's experience -> its training batches. Throws on bad experience.
  virtual StageResult run(const ExperienceTickets& experience, int64_t step) = 0;
};

/// The built-in stage: drops answers too short to train on, computes the algorithm's
/// advantages (and returns) beside the data, and publishes the experience as one batch.
class AlgorithmStage : public ExperienceStage {
 public:
  AlgorithmStage(std::shared_ptr<rl::Algorithm> algorithm, std::shared_ptr<TicketStore> store);
  StageResult run(const ExperienceTickets& experience, int64_t step) override;
  /// --rollout_is_truncation: when the sequences bring the rollout copy's log-probs
  /// (--async_rollout), each token's policy-gradient loss is weighted by
  /// min(exp(logprobs - rollout_logprobs), cap) (rl/truncated_is.hpp); 0 = off.
  void set_rollout_is_truncation(double cap) { rollout_is_truncation_ = cap; }

 private:
  std::shared_ptr<rl::Algorithm> algorithm_;
  std::shared_ptr<TicketStore> store_;
  double rollout_is_truncation_ = 0;
};

}  // namespace troupe::actors
