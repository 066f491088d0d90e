# The troupe CLI's train command: help, flag errors that name the flag, config files,
# and steps 1-3 (run_steps.sh) and DPO (run_dpo.sh) end to end on a small demo corpus.
set(troupe_cli $<TARGET_FILE:troupe_cli>)
set(cli_dir ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli)
file(MAKE_DIRECTORY ${cli_dir})
file(WRITE ${cli_dir}/bad.cfg "# a config with a typo\nlearning_rat = 1e-3\n")
file(WRITE ${cli_dir}/good.json "{\"step\": 1, \"ppo_epochs\": 2}\n")

# A model directory whose weights cannot be read: a check that must come before the
# model is built names its own flag instead of the weights.
set(broken_model ${cli_dir}/broken_model)
file(MAKE_DIRECTORY ${broken_model})
foreach(name config.json tokenizer.json tokenizer_config.json special_tokens_map.json)
  file(COPY ${TROUPE_FIXTURES_DIR}/models/gpt2/${name} DESTINATION ${broken_model})
endforeach()
file(WRITE ${broken_model}/model.safetensors "not safetensors")

function(troupe_cli_test name expect)
  add_test(NAME "cli: ${name}" COMMAND ${troupe_cli} ${ARGN})
  set_tests_properties("cli: ${name}" PROPERTIES PASS_REGULAR_EXPRESSION "${expect}" TIMEOUT 60)
endfunction()

troupe_cli_test("train --help lists DeepSpeed-Chat's flags"
  "--per_device_train_batch_size.*--actor_model_name_or_path" train --help)
troupe_cli_test("an unknown train flag is named" "learning_rat" train --step 1 --learning_rat 1e-3)
troupe_cli_test("a step-3 flag with --step 1 is refused by name" "--ppo_epochs does not apply to --step 1"
  train --step 1 --ppo_epochs 2 --model_name_or_path x --data_path Dahoas/rm-static=x --output_dir x)
troupe_cli_test("--offload on the CPU says it is a no-op" "--offload: a no-op on the CPU"
  train --step 1 --offload --model_name_or_path x --data_path Dahoas/rm-static=x --output_dir ${cli_dir}/offload)
troupe_cli_test("--offload on a GPU is refused, not ignored" "--offload: offloading to host memory from cuda is not implemented yet"
  train --step 1 --offload --device cuda --model_name_or_path x --data_path Dahoas/rm-static=x --output_dir ${cli_dir}/offload)
troupe_cli_test("a step-3 flag in its dashed spelling is refused by its name"
  "--max_answer_seq_len does not apply to --step 2 \\(it is a step 3 flag\\)"
  train --step 2 --max-answer-seq-len 8 --model_name_or_path x --data_path Dahoas/rm-static=x --output_dir x)
troupe_cli_test("a step 1/2 flag with --step 3 is refused by name" "--packing does not apply to --step 3 \\(it is a step 1/2 flag\\)"
  train --step 3 --packing --actor_model_name_or_path x --output_dir x)
troupe_cli_test("a malformed number is named" "--learning_rate" train --step 1 --learning_rate fast)
troupe_cli_test("a config file's unknown key names the file and line" "bad.cfg:2: --learning_rat"
  train --config ${cli_dir}/bad.cfg)
troupe_cli_test("flags from a JSON config file are checked like the command line's"
  "--ppo_epochs does not apply to --step 1" train --config ${cli_dir}/good.json)
troupe_cli_test("a missing model is named" "--model_name_or_path is required"
  train --step 1 --data_path Dahoas/rm-static=x --output_dir ${cli_dir}/none)
troupe_cli_test("--listen without --topology is refused" "--listen needs --topology"
  train --step 3 --actor_model_name_or_path x --critic_model_name_or_path x --data_path Dahoas/rm-static=x
  --listen 127.0.0.1:1 --output_dir ${cli_dir}/listen)
troupe_cli_test("a topology step 3 cannot run names the field"
  "actor_ref_critic_reward.json: roles.actor.tp = 2: step 3 runs data-parallel ranks only"
  train --step 3 --actor_model_name_or_path ${TROUPE_FIXTURES_DIR}/models/gpt2
  --critic_model_name_or_path ${TROUPE_FIXTURES_DIR}/models/gpt2
  --data_path Dahoas/rm-static=x --topology ${PROJECT_SOURCE_DIR}/placement/examples/actor_ref_critic_reward.json
  --output_dir ${cli_dir}/topology)

add_test(NAME "cli: steps 1, 2 and 3 from the command line on a small demo corpus"
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run_steps.sh ${troupe_cli} ${cli_dir}/steps
          $<TARGET_FILE:troupe_example_custom_algorithm>)
set_tests_properties("cli: steps 1, 2 and 3 from the command line on a small demo corpus" PROPERTIES TIMEOUT 900)
add_test(NAME "cli: step 3 killed after a checkpoint and resumed equals the uninterrupted run"
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/step3_resume.sh ${troupe_cli} ${cli_dir}/step3_resume)
set_tests_properties("cli: step 3 killed after a checkpoint and resumed equals the uninterrupted run" PROPERTIES TIMEOUT 600)
add_test(NAME "cli: step 3 with --listen workers that rejoin survives a lost worker and equals the uninterrupted run"
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/step3_rejoin.sh ${troupe_cli} ${cli_dir}/step3_rejoin)
set_tests_properties("cli: step 3 with --listen workers that rejoin survives a lost worker and equals the uninterrupted run"
  PROPERTIES TIMEOUT 600)
add_test(NAME "cli: step 3 over a two-node cluster places the actor's ranks by the node each worker reports"
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/step3_cluster_nodes.sh ${troupe_cli} ${cli_dir}/step3_cluster_nodes)
set_tests_properties("cli: step 3 over a two-node cluster places the actor's ranks by the node each worker reports"
  PROPERTIES TIMEOUT 400)
troupe_cli_test("--reduce_bucket_size with another ZeRO stage is refused" "--reduce_bucket_size applies to --zero_stage 2, and this run has --zero_stage 3"
  train --step 1 --zero_stage 3 --reduce_bucket_size 4096 --model_name_or_path x --data_path Dahoas/rm-static=x --output_dir x)
troupe_cli_test("--zero3_prefetch_layers with another ZeRO stage is refused" "--zero3_prefetch_layers applies to --zero_stage 3, and this run has --zero_stage 0"
  train --step 1 --zero3_prefetch_layers 2 --model_name_or_path x --data_path Dahoas/rm-static=x --output_dir x)
troupe_cli_test("--rejoin_timeout without --listen is refused" "--rejoin_timeout needs --listen"
  train --step 3 --rejoin_timeout 30 --actor_model_name_or_path x --output_dir ${cli_dir}/rejoin_no_listen)
troupe_cli_test("a misspelt dataset schema is refused before the model is built"
  "--data_path 'Dahoas/rm-statik=x'"
  train --step 1 --model_name_or_path ${broken_model} --data_path Dahoas/rm-statik=x --output_dir ${cli_dir}/schema)
troupe_cli_test("a missing dataset folder is refused before the model is built" "no/such/folder does not exist"
  train --step 2 --model_name_or_path ${broken_model} --data_path Dahoas/rm-static=no/such/folder --output_dir ${cli_dir}/folder)
add_test(NAME "cli: steps 1-2 on two data-parallel ranks at ZeRO stages 0-3"
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/data_parallel_steps.sh ${troupe_cli} ${cli_dir}/data_parallel)
set_tests_properties("cli: steps 1-2 on two data-parallel ranks at ZeRO stages 0-3" PROPERTIES TIMEOUT 600)
add_test(NAME "cli: steps 1-2 and DPO evaluate a share per rank; DPO at ZeRO stage 3 trains as at stage 0"
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/data_parallel_eval.sh ${troupe_cli} ${cli_dir}/data_parallel_eval)
set_tests_properties("cli: steps 1-2 and DPO evaluate a share per rank; DPO at ZeRO stage 3 trains as at stage 0"
  PROPERTIES TIMEOUT 600)
add_test(NAME "cli: step 1 started by an external launcher (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)"
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/external_launch.sh ${troupe_cli} ${cli_dir}/external_launch)
set_tests_properties("cli: step 1 started by an external launcher (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)"
  PROPERTIES TIMEOUT 600)
troupe_cli_test("--heartbeat_timeout without --topology is refused, not ignored"
  "--heartbeat_timeout needs --topology: it acts on worker processes"
  train --step 3 --heartbeat_timeout 5 --actor_model_name_or_path x --output_dir ${cli_dir}/heartbeat)
troupe_cli_test("--zero_stage is a step 1/2 flag" "--zero_stage does not apply to --step 3"
  train --step 3 --zero_stage 3 --actor_model_name_or_path x --output_dir ${cli_dir}/zero_stage3)

# DPO (--step dpo): its flags checked before any model is built, then a short run.
file(MAKE_DIRECTORY ${cli_dir}/no_rejected)
file(WRITE ${cli_dir}/no_rejected/train.jsonl
  "{\"prompt\": \"Human: hi Assistant:\", \"chosen\": \" hello\"}\n{\"prompt\": \"Human: yo Assistant:\", \"chosen\": \" hey\"}\n")
troupe_cli_test("--step dpo refuses --beta 0 by name" "--beta 0.000000: must be > 0"
  train --step dpo --beta 0 --model_name_or_path ${broken_model} --data_path Dahoas/rm-static=x --output_dir ${cli_dir}/dpo_beta)
troupe_cli_test("--step dpo refuses --label_smoothing 0.5 by name" "--label_smoothing 0.500000: must be in \\[0, 0.5\\)"
  train --step dpo --label_smoothing 0.5 --model_name_or_path ${broken_model} --data_path Dahoas/rm-static=x
  --output_dir ${cli_dir}/dpo_smoothing)
troupe_cli_test("a dataset without rejected answers is refused for DPO before the model is built"
  "--step dpo: none of the [0-9]+ training samples has a 'rejected' answer"
  train --step dpo --model_name_or_path ${broken_model} --data_path local/jsonfile=${cli_dir}/no_rejected
  --data_split 0,1,0 --output_dir ${cli_dir}/dpo_no_rejected)
troupe_cli_test("--beta with --step 1 is refused by name" "--beta does not apply to --step 1 \\(it is a --step dpo flag\\)"
  train --step 1 --beta 0.2 --model_name_or_path x --data_path Dahoas/rm-static=x --output_dir x)
troupe_cli_test("--label_smoothing with --step 3 is refused by name" "--label_smoothing does not apply to --step 3"
  train --step 3 --label_smoothing 0.1 --actor_model_name_or_path x --data_path Dahoas/rm-static=x --output_dir x)
troupe_cli_test("a step-3 flag with --step dpo is refused by name" "--ppo_epochs does not apply to --step dpo"
  train --step dpo --ppo_epochs 2 --model_name_or_path x --data_path Dahoas/rm-static=x --output_dir x)
troupe_cli_test("an unknown --step is named" "expected 1, 2, 3 or dpo" train --step 4)
troupe_cli_test("--demo_dpo with a --step is refused" "--demo_dpo belongs to the demo run" train --step 1 --demo_dpo)
troupe_cli_test("--demo_algos with a --step is refused" "--demo_algos belongs to the demo run"
  train --step 3 --demo_algos grpo)
troupe_cli_test("--demo_algos naming the demo's own algorithm is refused" "'ppo' is the demo's own step-3 algorithm"
  train --output_dir ${cli_dir}/demo_algos_ppo --demo_algos grpo,ppo)
troupe_cli_test("--demo_algos naming an unknown algorithm lists the known ones" "unknown RL algorithm 'ppo2' \\(known:"
  train --output_dir ${cli_dir}/demo_algos_unknown --demo_algos rloo,ppo2)
troupe_cli_test("--beta in the demo run without --demo_dpo is refused" "--beta applies to --step dpo, or to the demo run"
  train --beta 0.2)
add_test(NAME "cli: --step dpo trains on a small demo corpus and logs DPO's metrics"
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run_dpo.sh ${troupe_cli} ${cli_dir}/dpo)
set_tests_properties("cli: --step dpo trains on a small demo corpus and logs DPO's metrics" PROPERTIES TIMEOUT 300)

# Step 3 scored by an HTTP endpoint (--reward_url) and its flag checks.
add_test(NAME "cli: step 3 with --reward_url takes its rewards from an HTTP endpoint"
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/step3_reward_url.sh ${troupe_cli} ${cli_dir}/reward_url
          ${TROUPE_FIXTURES_DIR}/models/gpt2)
set_tests_properties("cli: step 3 with --reward_url takes its rewards from an HTTP endpoint" PROPERTIES TIMEOUT 120)
set(reward_url_flags train --step 3 --algo grpo --actor_model_name_or_path ${broken_model}
    --data_path Dahoas/rm-static=x --output_dir ${cli_dir}/reward_url_flags)
troupe_cli_test("--reward_url with --reward_function is refused"
  "--reward_url and --reward_function both select the reward"
  ${reward_url_flags} --reward_url http://127.0.0.1:9/score --reward_function demo_gold)
troupe_cli_test("--reward_url with --reward_model_name_or_path is refused"
  "--reward_url and --reward_model_name_or_path both select the reward"
  ${reward_url_flags} --reward_url http://127.0.0.1:9/score --reward_model_name_or_path ${broken_model})
troupe_cli_test("a malformed --reward_url is refused before the model is built"
  "--reward_url \"127.0.0.1:9/score\": expected http://HOST"
  ${reward_url_flags} --reward_url 127.0.0.1:9/score)
troupe_cli_test("--zero_stage with one process says it partitions nothing" "--zero_stage 3 with one process partitions nothing"
  train --step 1 --zero_stage 3 --model_name_or_path preset:llama-tiny --tokenizer ${TROUPE_FIXTURES_DIR}/models/gpt2
  --data_path Dahoas/rm-static=${TROUPE_FIXTURES_DIR}/data/rm-static --data_split 1,0,0 --max_seq_len 32
  --per_device_train_batch_size 2 --max_steps 1 --eval_samples 2 --output_dir ${cli_dir}/zero_one)

# --max_tokens_per_microbatch (step 3): the minibatch's metrics, in token-budget micro-batches.
add_test(NAME "cli: step 3 with --max_tokens_per_microbatch logs the metrics of one pass per minibatch"
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/step3_micro_batches.sh ${troupe_cli} ${cli_dir}/micro_batches
          ${TROUPE_FIXTURES_DIR}/models/gpt2)
set_tests_properties("cli: step 3 with --max_tokens_per_microbatch logs the metrics of one pass per minibatch"
  PROPERTIES TIMEOUT 300)
# --inference_weights training (step 3): generation from the training weights, no packed copy.
add_test(NAME "cli: step 3 with --inference_weights training samples what the packed copies sample, packing nothing"
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/step3_inference_weights.sh ${troupe_cli} ${cli_dir}/inference_weights
          ${TROUPE_FIXTURES_DIR}/models/gpt2)
set_tests_properties("cli: step 3 with --inference_weights training samples what the packed copies sample, packing nothing"
  PROPERTIES TIMEOUT 300)
troupe_cli_test("--inference_weights training with --inference_dtype bf16 is refused by name"
  "in their own dtype. --inference_dtype bf16 needs --inference_weights packed"
  train --step 3 --algo grpo --inference_weights training --inference_dtype bf16 --data_path Dahoas/rm-static=nowhere
  --actor_model_name_or_path ${TROUPE_FIXTURES_DIR}/models/gpt2
  --reward_function demo_gold --output_dir ${cli_dir}/inference_weights_bf16)
# --async_rollout (step 3): the first cycle as the synchronous run's, then rollouts one update old.
add_test(NAME "cli: step 3 with --async_rollout trains on rollouts at most one update old"
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/step3_async_rollout.sh ${troupe_cli} ${cli_dir}/async_rollout
          ${TROUPE_FIXTURES_DIR}/models/gpt2)
set_tests_properties("cli: step 3 with --async_rollout trains on rollouts at most one update old"
  PROPERTIES TIMEOUT 300)
troupe_cli_test("a negative --max_tokens_per_microbatch is refused by name" "--max_tokens_per_microbatch: Value -5 not in range 0"
  train --step 3 --max_tokens_per_microbatch -5 --actor_model_name_or_path x --output_dir ${cli_dir}/micro_negative)

# --packing (steps 1-2): the padded run's losses, less padding computed.
add_test(NAME "cli: --packing gives the padded run's step-1 and step-2 losses"
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run_packing.sh ${troupe_cli} ${cli_dir}/packing)
set_tests_properties("cli: --packing gives the padded run's step-1 and step-2 losses" PROPERTIES TIMEOUT 300)

# --log_level: debug shows debug lines, warn hides info lines, an unknown level is refused by name.
add_test(NAME "cli: --log_level shows debug lines, hides info lines at warn and refuses an unknown level by name"
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/log_level.sh ${troupe_cli} ${cli_dir}/log_level ${TROUPE_FIXTURES_DIR})
set_tests_properties("cli: --log_level shows debug lines, hides info lines at warn and refuses an unknown level by name"
  PROPERTIES TIMEOUT 300)
troupe_cli_test("plan --async_rollout refuses a topology the rollout copy cannot follow" "--async_rollout: the actor has 2 ranks; the rollout copy follows one actor rank"
  plan --model opt-125m --async_rollout --topology ${PROJECT_SOURCE_DIR}/placement/examples/step3_actor_dp2.json)
