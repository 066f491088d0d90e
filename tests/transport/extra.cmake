# The peer process of the multi-process transport tests (and of bench/transport_bench).
add_executable(troupe_transport_peer ${CMAKE_CURRENT_LIST_DIR}/transport_peer.cpp)
target_link_libraries(troupe_transport_peer PRIVATE troupe::transport troupe_warnings)
target_compile_definitions(troupe_transport_peer PRIVATE TROUPE_TEST_TMP_DIR="${CMAKE_CURRENT_BINARY_DIR}/tmp")
troupe_use_torch_pch(troupe_transport_peer)
add_dependencies(troupe_transport_tests troupe_transport_peer)
target_compile_definitions(troupe_transport_tests PRIVATE
  TROUPE_TRANSPORT_PEER="$<TARGET_FILE:troupe_transport_peer>")

# Gloo's headers come from Debian's libgloo-dev, an older gloo than the one inside
# libtorch_cpu.so: they may declare, never define. No gloo symbol, defined or referenced,
# may appear in troupe's transport library (the Gloo communicator only calls c10d).
add_test(NAME "transport: no gloo code is compiled from Debian's gloo headers"
  COMMAND sh -c "nm -C '$<TARGET_FILE:troupe_transport>' | grep '[ (<,]gloo::' && exit 1 || exit 0")
