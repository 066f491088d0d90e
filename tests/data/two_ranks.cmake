# Starts rank 1 and rank 0 of the hidden "[.cache_two_ranks]" case at the same time
# (a pipeline runs its commands concurrently) and fails unless both pass.
file(REMOVE_RECURSE ${CACHE_DIR})
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env TROUPE_TEST_RANK=1 TROUPE_TEST_CACHE_DIR=${CACHE_DIR} ${TEST_EXE} "[.cache_two_ranks]"
  COMMAND ${CMAKE_COMMAND} -E env TROUPE_TEST_RANK=0 TROUPE_TEST_CACHE_DIR=${CACHE_DIR} ${TEST_EXE} "[.cache_two_ranks]"
  RESULTS_VARIABLE results OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT results STREQUAL "0;0")
  message(FATAL_ERROR "rank 1 and rank 0 exited with ${results}\n${out}\n${err}")
endif()
file(GLOB left ${CACHE_DIR}/*)
list(LENGTH left count)
if(NOT count EQUAL 2)
  message(FATAL_ERROR "expected the train and eval cache files only, found: ${left}")
endif()
message(STATUS "both ranks loaded the cache rank 0 built")
