# `troupe data inspect` on the committed fixtures: what it prints, and its one-line errors.
set(troupe_data_fixtures ${TROUPE_FIXTURES_DIR}/data)
add_test(NAME "data: troupe data inspect prints phases, token lengths and drops"
  COMMAND troupe_cli data inspect --data_path Dahoas/rm-static=${troupe_data_fixtures}/rm-static
          --data_path openai/webgpt_comparisons=${troupe_data_fixtures}/webgpt_comparisons.jsonl
          --data_split 1,1,1 --tokenizer ${TROUPE_FIXTURES_DIR}/models/opt --max_prompt_seq_len 20)
set_tests_properties("data: troupe data inspect prints phases, token lengths and drops" PROPERTIES
  PASS_REGULAR_EXPRESSION "phase 3: train 1, eval 0\n    train:\n      tokens \\(prompt\\): p50 42.*1 prompts over max_prompt_seq_len 20.*blended:\n  phase 1: train 2, eval 1")
add_test(NAME "data: troupe data inspect --skip_bad_samples reports the count"
  COMMAND troupe_cli data inspect --data_path Dahoas/rm-static=${troupe_data_fixtures}/bad/rm-static-with-bad-rows.jsonl
          --data_split 1,0,0 --skip_bad_samples)
set_tests_properties("data: troupe data inspect --skip_bad_samples reports the count" PROPERTIES
  PASS_REGULAR_EXPRESSION "rows 4, samples 2, declined by the adapter 0, bad 2\n    bad: [^\n]*rm-static-with-bad-rows.jsonl:2: malformed JSON.*rm-static-with-bad-rows.jsonl:3: field 'chosen': expected a string, got a number.*bad samples skipped: 2")
add_test(NAME "data: troupe data inspect fails in one line on a bad row"
  COMMAND troupe_cli data inspect --data_path Dahoas/rm-static=${troupe_data_fixtures}/bad/rm-static-with-bad-rows.jsonl)
set_tests_properties("data: troupe data inspect fails in one line on a bad row" PROPERTIES
  PASS_REGULAR_EXPRESSION "^troupe: error: [^\n]*rm-static-with-bad-rows.jsonl:2: malformed JSON[^\n]*\n$")

# Rank 0 builds the tokenized cache while rank 1, a separate process, waits for it.
add_test(NAME "data: two processes share one tokenized cache (rank 0 builds)"
  COMMAND ${CMAKE_COMMAND} -DTEST_EXE=$<TARGET_FILE:troupe_data_tests>
          -DCACHE_DIR=${CMAKE_CURRENT_BINARY_DIR}/tmp/data/two_ranks -P ${CMAKE_CURRENT_SOURCE_DIR}/data/two_ranks.cmake)
set_tests_properties("data: two processes share one tokenized cache (rank 0 builds)" PROPERTIES TIMEOUT 300)
