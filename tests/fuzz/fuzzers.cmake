# Included by tests/CMakeLists.txt when KV_FUZZ is on: builds tests/fuzz as a
# project of its own with clang (the fuzzers need libFuzzer; the main build may
# be g++), then registers each target as a ctest test with the label "fuzz"
# that fuzzes for KV_FUZZ_SECONDS over the committed corpus.
include(ExternalProject)

if(NOT KV_CLANGXX OR NOT KV_CLANG_FUZZER_RT)
  message(FATAL_ERROR "KV_FUZZ needs clang++ and its libFuzzer runtime (Debian: apt-get install "
                      "clang libclang-rt-dev), or configure with -DKV_FUZZ=OFF")
endif()

set(KV_FUZZ_SECONDS 10 CACHE STRING "How long each fuzz target runs in ctest (label fuzz)")
set(KV_FUZZ_TARGETS client_frame node_frame gossip_payload stored_object object_merge
    causal_context
    meta_record z85 resp_command http_request metrics_text batch_frame link_bytes)
set(KV_FUZZ_BUILD_DIR ${CMAKE_BINARY_DIR}/fuzz)

ExternalProject_Add(kv_fuzzers
  SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz
  BINARY_DIR ${KV_FUZZ_BUILD_DIR}
  CMAKE_ARGS -DCMAKE_CXX_COMPILER=${KV_CLANGXX}
             -DCMAKE_CXX_COMPILER_LAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER}
  # The sub-build tracks its own sources; run it on every build so an edited
  # decoder is rebuilt (a no-op when nothing changed).
  BUILD_ALWAYS ON
  INSTALL_COMMAND "")

foreach(target IN LISTS KV_FUZZ_TARGETS)
  add_test(NAME fuzz_${target}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run_fuzzer.sh
                   ${KV_FUZZ_BUILD_DIR}/bin/fuzz_${target} ${target}
                   ${CMAKE_CURRENT_SOURCE_DIR}/fuzz ${CMAKE_BINARY_DIR}/fuzz-work
                   ${KV_FUZZ_SECONDS})
  # Beyond the fuzzing time: the seed corpus is read first, then the run is
  # stopped by -max_total_time.
  math(EXPR timeout "${KV_FUZZ_SECONDS} + 120")
  set_tests_properties(fuzz_${target} PROPERTIES LABELS fuzz TIMEOUT ${timeout})
endforeach()
