# Every library, test and (on request) executable is built in each variant of
# KV_VARIANTS: "plain" and, with KV_SANITIZERS, "asan" (AddressSanitizer +
# UndefinedBehaviorSanitizer). A target in variant V links the V variants of its
# kv_* dependencies, so sanitized tests run sanitized code from top to bottom.
# The plain variant has no suffix; the asan variant's names end in "_asan".
set(KV_VARIANTS plain)
if(KV_SANITIZERS)
  list(APPEND KV_VARIANTS asan)
endif()
set(KV_SANITIZER_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=all)

function(_kv_suffix out variant)
  if(variant STREQUAL "asan")
    set(${out} "_asan" PARENT_SCOPE)
  else()
    set(${out} "" PARENT_SCOPE)
  endif()
endfunction()

function(_kv_setup target variant)
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
  if(variant STREQUAL "asan")
    # GCC 12 reports false maybe-uninitialized warnings in Catch2 and msgpack
    # under the sanitizers; the plain variant keeps the warning.
    target_compile_options(${target} PRIVATE ${KV_SANITIZER_FLAGS} -Wno-maybe-uninitialized)
    target_link_options(${target} PUBLIC ${KV_SANITIZER_FLAGS})
  endif()
  _kv_suffix(sfx ${variant})
  foreach(dep ${ARGN})
    if(dep MATCHES "^kv_")
      target_link_libraries(${target} PUBLIC ${dep}${sfx})
    else()
      target_link_libraries(${target} PUBLIC ${dep})
    endif()
  endforeach()
endfunction()

# kv_library(NAME SOURCES ... DEPS ...): static library kv_NAME (and kv_NAME_asan).
function(kv_library name)
  cmake_parse_arguments(A "" "" "SOURCES;DEPS" ${ARGN})
  foreach(v IN LISTS KV_VARIANTS)
    _kv_suffix(sfx ${v})
    add_library(kv_${name}${sfx} STATIC ${A_SOURCES})
    _kv_setup(kv_${name}${sfx} ${v} ${A_DEPS})
  endforeach()
endfunction()

# kv_executable(NAME SOURCES ... DEPS ... [SANITIZED]): build/bin/NAME and, with
# SANITIZED, build/bin/NAME_asan (the process tests run the sanitized kvnode).
function(kv_executable name)
  cmake_parse_arguments(A "SANITIZED" "" "SOURCES;DEPS" ${ARGN})
  set(variants plain)
  if(A_SANITIZED)
    set(variants ${KV_VARIANTS})
  endif()
  foreach(v IN LISTS variants)
    _kv_suffix(sfx ${v})
    add_executable(${name}${sfx} ${A_SOURCES})
    _kv_setup(${name}${sfx} ${v} ${A_DEPS})
  endforeach()
endfunction()

# kv_test(NAME SOURCES ... DEPS ... LABELS ...): a Catch2 executable per
# variant, each registered with ctest (the asan one also labelled "asan").
function(kv_test name)
  cmake_parse_arguments(A "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  foreach(v IN LISTS KV_VARIANTS)
    _kv_suffix(sfx ${v})
    add_executable(${name}${sfx} ${A_SOURCES})
    _kv_setup(${name}${sfx} ${v} kv_catch_main ${A_DEPS})
    set(labels ${A_LABELS})
    if(v STREQUAL "asan")
      list(APPEND labels asan)
    endif()
    add_test(NAME ${name}${sfx} COMMAND ${name}${sfx})
    # XDG_CONFIG_HOME and KV_KEY_FILE: the kvctl a test runs must not pick up
    # the developer's default credentials (tools/dev up installs some).
    set_tests_properties(${name}${sfx} PROPERTIES LABELS "${labels}" TIMEOUT ${A_TIMEOUT}
      ENVIRONMENT "KV_BIN_DIR=${CMAKE_BINARY_DIR}/bin;KV_VARIANT_SUFFIX=${sfx};XDG_CONFIG_HOME=${CMAKE_BINARY_DIR}/test-config;KV_KEY_FILE=")
  endforeach()
endfunction()
