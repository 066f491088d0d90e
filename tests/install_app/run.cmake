# Installs the build tree into a scratch prefix, then configures, builds and runs the
# out-of-tree app against it. Called by ctest with -DBUILD_DIR, -DSOURCE_DIR, -DWORK_DIR.
file(REMOVE_RECURSE ${WORK_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "install failed")
endif()
set(launcher)
find_program(CCACHE ccache)
if(CCACHE)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${CCACHE})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/build -DCMAKE_BUILD_TYPE=Release
                        -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DOWN_LOOP_SOURCE=${OWN_LOOP_SOURCE} ${launcher}
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the app against the installed package failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build -j 2 RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the app failed")
endif()
execute_process(COMMAND ${WORK_DIR}/build/install_app RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "the app failed")
endif()
# Two cycles of the own loop on the tiny fixture model (actor and reward) and prompts.
execute_process(COMMAND ${WORK_DIR}/build/own_loop --actor_model_name_or_path ${FIXTURES_DIR}/models/opt
                        --reward_model_name_or_path ${FIXTURES_DIR}/models/opt
                        --data_path Dahoas/rm-static=${FIXTURES_DIR}/data/rm-static --data_split 0,0,1
                        --max_prompt_seq_len 64 --max_answer_seq_len 4 --per_device_generation_batch_size 1
                        --max_steps 2 --output_dir ${WORK_DIR}/own_loop_run
                OUTPUT_VARIABLE own_loop_out ERROR_VARIABLE own_loop_err RESULT_VARIABLE rc)
if(rc OR NOT own_loop_out MATCHES "own loop: 2 cycles" OR NOT EXISTS ${WORK_DIR}/own_loop_run/actor/config.json)
  message(FATAL_ERROR "the own-loop app failed:\n${own_loop_out}\n${own_loop_err}")
endif()
