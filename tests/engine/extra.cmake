# TensorBoard reads the event files troupe writes (tests/reference/read_tensorboard.py):
# the hidden Catch case "[tensorboard_export]" writes known scalars, the script loads
# them with TensorBoard's EventAccumulator and compares exactly.
set(troupe_tensorboard_dir ${CMAKE_CURRENT_BINARY_DIR}/tmp/tensorboard)
add_test(NAME "engine: write a TensorBoard event file" COMMAND troupe_engine_tests "[tensorboard_export]")
set_tests_properties("engine: write a TensorBoard event file" PROPERTIES
  FIXTURES_SETUP troupe_tensorboard_events TIMEOUT 120)
add_test(NAME "engine: TensorBoard reads troupe's event file"
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/reference/read_tensorboard.py ${troupe_tensorboard_dir})
set_tests_properties("engine: TensorBoard reads troupe's event file" PROPERTIES
  FIXTURES_REQUIRED troupe_tensorboard_events TIMEOUT 300)
