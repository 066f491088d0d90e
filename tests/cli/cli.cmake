# The troupe CLI's train command: help, flag errors that name the flag, config files,
# and steps 1-3 end to end on a small demo corpus (run_steps.sh).
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
troupe_cli_test("a misspelt dataset schema is refused before the model is built"
  "--data_path 'Dahoas/rm-statik=x'"
  train --step 1 --model_name_or_path ${broken_model} --data_path Dahoas/rm-statik=x --output_dir ${cli_dir}/schema)
troupe_cli_test("a missing dataset folder is refused before the model is built" "no/such/folder does not exist"
  train --step 2 --model_name_or_path ${broken_model} --data_path Dahoas/rm-static=no/such/folder --output_dir ${cli_dir}/folder)

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
