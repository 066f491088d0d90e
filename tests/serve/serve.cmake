# `troupe serve`: the openai client, bad input, the chat page in Chromium, and the
# start-up refusal of a chat_template troupe does not know. Each Python test starts its
# own server on a free port over a copy of the tiny OPT fixture whose tokens are all
# ASCII (tests/reference/make_serve_fixture.py).
set(serve_work ${CMAKE_CURRENT_BINARY_DIR}/tmp/serve)
foreach(test_name openai_client bad_input chat_page)
  set(label "serve: ${test_name}")
  if(test_name STREQUAL "openai_client")
    set(label "serve: the openai client gets troupe chat's answers, streamed or not, alone or 8 at once")
  elseif(test_name STREQUAL "bad_input")
    set(label "serve: bad input gets OpenAI's errors; hang-ups free rows; SIGTERM drains and exits 0")
  else()
    set(label "serve: the chat page streams answers and keeps the conversation in headless Chromium")
  endif()
  add_test(NAME "${label}"
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_${test_name}.py $<TARGET_FILE:troupe_cli>
            ${TROUPE_FIXTURES_DIR}/models/opt_ascii ${serve_work}/${test_name})
  set_tests_properties("${label}" PROPERTIES TIMEOUT 180)
endforeach()

set(unknown_template ${serve_work}/unknown_template)
file(MAKE_DIRECTORY ${unknown_template})
foreach(name config.json model.safetensors tokenizer.json special_tokens_map.json)
  file(COPY ${TROUPE_FIXTURES_DIR}/models/opt/${name} DESTINATION ${unknown_template})
endforeach()
file(WRITE ${unknown_template}/tokenizer_config.json
  "{\"eos_token\": \"</s>\", \"chat_template\": \"{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}\"}\n")
add_test(NAME "serve: an unknown chat_template is refused at start-up, naming --chat_format"
  COMMAND $<TARGET_FILE:troupe_cli> serve --model ${unknown_template} --port 0)
set_tests_properties("serve: an unknown chat_template is refused at start-up, naming --chat_format" PROPERTIES
  PASS_REGULAR_EXPRESSION "chat_template is not one troupe renders.*--chat_format" TIMEOUT 60)
add_test(NAME "serve: troupe chat refuses an unknown chat_template too"
  COMMAND sh -c "echo hi | $<TARGET_FILE:troupe_cli> chat --model ${unknown_template} --json")
set_tests_properties("serve: troupe chat refuses an unknown chat_template too" PROPERTIES
  PASS_REGULAR_EXPRESSION "--chat_format" TIMEOUT 60)
add_test(NAME "serve: --chat_format overrides an unknown chat_template"
  COMMAND sh -c "echo hi | $<TARGET_FILE:troupe_cli> chat --model ${unknown_template} --json --max_new_tokens 2 --chat_format deepspeed_chat")
set_tests_properties("serve: --chat_format overrides an unknown chat_template" PROPERTIES
  PASS_REGULAR_EXPRESSION "^\\{\"turn\":1,\"human\":\"hi\"" TIMEOUT 60)

# transformers renders the templates troupe writes as troupe renders them.
add_test(NAME "models: write troupe's chat templates" COMMAND troupe_models_tests "[chat_template_export]")
set_tests_properties("models: write troupe's chat templates" PROPERTIES FIXTURES_SETUP troupe_chat_templates)
add_test(NAME "models: transformers' apply_chat_template renders troupe's templates as troupe does"
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/reference/check_chat_template.py
          ${CMAKE_CURRENT_BINARY_DIR}/tmp/chat_templates/troupe ${CMAKE_CURRENT_BINARY_DIR}/tmp/chat_templates/deepspeed_chat)
set_tests_properties("models: transformers' apply_chat_template renders troupe's templates as troupe does" PROPERTIES
  FIXTURES_REQUIRED troupe_chat_templates TIMEOUT 300)

add_test(NAME "serve: --help lists the server's flags" COMMAND $<TARGET_FILE:troupe_cli> serve --help)
set_tests_properties("serve: --help lists the server's flags" PROPERTIES
  PASS_REGULAR_EXPRESSION "--host.*--port.*--api_key.*--max_batch.*--served_model_name.*--chat_format.*--inference_dtype.*--device.*--dtype"
  TIMEOUT 60)
