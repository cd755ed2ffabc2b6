# A test that builds a target of its own (a README snippet, tests/readme.cmake; the no-OpenSSL
# program), then runs it, when asked, in a folder of its own that is removed afterwards (TMPDIR
# points there too).
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target "${TARGET}" RESULT_VARIABLE built)
if(NOT built EQUAL 0)
  message(FATAL_ERROR "${TARGET} does not compile (its errors are above)")
endif()
if(PROGRAM STREQUAL "")
  return()
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
execute_process(COMMAND "${CMAKE_COMMAND}" -E env "TMPDIR=${WORK_DIR}" "${PROGRAM}"
  WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE ran)
file(REMOVE_RECURSE "${WORK_DIR}")
if(NOT ran EQUAL 0)
  message(FATAL_ERROR "${TARGET} failed when run: ${ran}")
endif()
