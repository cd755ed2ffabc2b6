# Every C++ block of README.md, extracted at configure time, compiled with our strict flags, and
# run when the line before it is `<!-- snippet: run -->`, so that no snippet can rot. A block
# with `int main(` is a program; one with TEST( or INSTANTIATE_ is linked with GoogleTest's
# main; any other is compiled only. Each block is a test of its own (readme.snippet.N, N counting
# the blocks from the top), so a broken one fails that test and not the build.

set(readme "${PROJECT_SOURCE_DIR}/README.md")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${readme}")
file(READ "${readme}" text)
set(snippet_dir "${CMAKE_CURRENT_BINARY_DIR}/readme")
file(MAKE_DIRECTORY "${snippet_dir}")

set(index 0)
set(position 0)
while(TRUE)
  string(SUBSTRING "${text}" ${position} -1 rest)
  string(FIND "${rest}" "\n```cpp\n" open)
  if(open EQUAL -1)
    break()
  endif()
  math(EXPR index "${index} + 1")
  math(EXPR open "${position} + ${open}")
  # Whether the line before the fence asks for a run.
  set(run FALSE)
  if(open GREATER 22)
    math(EXPR before "${open} - 21")
    string(SUBSTRING "${text}" ${before} 21 marker)
    if(marker STREQUAL "<!-- snippet: run -->")
      set(run TRUE)
    endif()
  endif()
  math(EXPR start "${open} + 8")
  string(SUBSTRING "${text}" 0 ${start} head)
  string(REGEX MATCHALL "\n" newlines "${head}")
  list(LENGTH newlines line)
  math(EXPR line "${line} + 1")  # the first line of code
  string(SUBSTRING "${text}" ${start} -1 rest)
  string(FIND "${rest}" "\n```" close)
  math(EXPR code_length "${close} + 1")
  string(SUBSTRING "${rest}" 0 ${code_length} code)
  math(EXPR position "${start} + ${code_length}")

  set(source "${snippet_dir}/snippet_${index}.cpp")
  set(content "#line ${line} \"${readme}\"\n${code}")
  set(old "")
  if(EXISTS "${source}")
    file(READ "${source}" old)
  endif()
  if(NOT old STREQUAL content)
    file(WRITE "${source}" "${content}")
  endif()
  set(target workspace.readme.snippet_${index})
  if(code MATCHES "int main\\(")
    add_executable(${target} EXCLUDE_FROM_ALL "${source}")
    target_link_libraries(${target} PRIVATE workspace_dev)
  elseif(code MATCHES "TEST\\(|INSTANTIATE_")
    add_executable(${target} EXCLUDE_FROM_ALL "${source}")
    target_link_libraries(${target} PRIVATE workspace_dev GTest::gtest GTest::gtest_main)
  else()
    add_library(${target} OBJECT EXCLUDE_FROM_ALL "${source}")
    target_link_libraries(${target} PRIVATE workspace_dev)
    set(run FALSE)
  endif()
  # A check that it compiles, not a build to keep: no optimiser, no debug information.
  target_compile_options(${target} PRIVATE -O0 -g0)
  set(program "")
  if(run)
    set(program "$<TARGET_FILE:${target}>")
  endif()
  add_test(NAME readme.snippet.${index}
    COMMAND "${CMAKE_COMMAND}" -D "BUILD_DIR=${PROJECT_BINARY_DIR}" -D "TARGET=${target}"
            -D "PROGRAM=${program}" -D "WORK_DIR=${snippet_dir}/run_${index}"
            -P "${CMAKE_CURRENT_SOURCE_DIR}/readme_snippet_test.cmake")
  # One build tool at a time on this build tree.
  set_tests_properties(readme.snippet.${index} PROPERTIES
    LABELS readme RESOURCE_LOCK workspace_build_tree TIMEOUT 600)
endwhile()
if(index EQUAL 0)
  message(FATAL_ERROR "README.md has no C++ blocks: the snippet extraction is broken")
endif()
