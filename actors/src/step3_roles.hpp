#pragma once
/// The RoleModels of step 3 over the engine, one header each: the policy (hybrid
/// engine: generate in inference layout, PPO updates in training layout, EMA, mixture
/// training), the critic, the reference policy, and the reward (a reward model or a C++
/// reward function). Each names its outputs as actors/batch_keys.hpp declares them.
#include "critic_role.hpp"
#include "policy_role.hpp"
#include "reference_role.hpp"
#include "reward_role.hpp"
