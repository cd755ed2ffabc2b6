# Prepares the Conan home the Conan packaging tests use: the detected default profile, no
# remotes (nothing may be fetched from the network), and asio, nlohmann_json and OpenSSL
# packaged from the system by the recipes in conan/recipes/.
# It also copies test_package/ to TEST_PACKAGE, where conan create builds it, so that nothing is
# written into the source tree.
# cmake -DCONAN=<conan> -DCONAN_HOME=<dir> -DSOURCE_DIR=<tree> -DPROFILE=<profile>
#       -DTEST_PACKAGE=<dir> -P conan_setup.cmake
file(REMOVE_RECURSE "${CONAN_HOME}" "${TEST_PACKAGE}")
file(COPY "${SOURCE_DIR}/test_package/" DESTINATION "${TEST_PACKAGE}")
set(ENV{CONAN_HOME} "${CONAN_HOME}")

function(conan)
  execute_process(COMMAND "${CONAN}" ${ARGN} RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    list(JOIN ARGN " " words)
    message(FATAL_ERROR "conan ${words}: exit ${result}")
  endif()
endfunction()

conan(profile detect)
conan(remote remove "*")
foreach(recipe IN ITEMS asio nlohmann_json openssl)
  conan(create "${SOURCE_DIR}/conan/recipes/${recipe}" --profile "${PROFILE}")
endforeach()
