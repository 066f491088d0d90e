# The suite reuses the shared torch precompiled header, which needs torch's include
# paths and definitions; troupe::placement itself keeps torch private.
target_link_libraries(troupe_placement_tests PRIVATE troupe_torch)
target_compile_definitions(troupe_placement_tests PRIVATE
  TROUPE_PLACEMENT_EXAMPLES_DIR="${PROJECT_SOURCE_DIR}/placement/examples")

# `troupe plan` end to end on the example topologies and clusters.
set(placement_examples ${PROJECT_SOURCE_DIR}/placement/examples)
add_test(NAME "placement: troupe plan places actor+reference and critic+reward on a 2x8 cluster"
  COMMAND troupe_cli plan --topology ${placement_examples}/actor_ref_critic_reward.json
                          --cluster ${placement_examples}/cluster_2x8_a100_80g.json)
set_tests_properties("placement: troupe plan places actor+reference and critic+reward on a 2x8 cluster" PROPERTIES
  PASS_REGULAR_EXPRESSION "node0/cuda:4-7.*the plan fits")
add_test(NAME "placement: troupe plan --json"
  COMMAND troupe_cli plan --topology ${placement_examples}/lora_cpu.json --json
                          --cluster ${placement_examples}/cluster_2x8_a100_80g.json)
set_tests_properties("placement: troupe plan --json" PROPERTIES PASS_REGULAR_EXPRESSION "\"feasible\": true")
add_test(NAME "placement: troupe plan rejects a plan that does not fit, exit 1"
  COMMAND sh -c "$0 plan --topology $1 --cluster $2; echo exit=$?" $<TARGET_FILE:troupe_cli>
          ${placement_examples}/all_separate.json ${placement_examples}/cluster_1x4_v100_16g.json)
set_tests_properties("placement: troupe plan rejects a plan that does not fit, exit 1" PROPERTIES
  PASS_REGULAR_EXPRESSION "troupe: error: all_separate.json: the plan does not fit: actor on node0/cuda:0 needs [0-9.]+ GiB, has 16.0 GiB free \\(short [0-9.]+ GiB.*exit=1")
