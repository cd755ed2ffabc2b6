# What both consumer projects check and build once workspace::workspace exists.

# The library's own strict flags (-Werror) are for its own targets; consumers never inherit them.
get_target_property(workspace_options workspace::workspace INTERFACE_COMPILE_OPTIONS)
if(workspace_options MATCHES "Werror")
  message(FATAL_ERROR "workspace::workspace passes -Werror to consumers: ${workspace_options}")
endif()

add_executable(workspace_consumer "${CMAKE_CURRENT_LIST_DIR}/consumer.cpp")
target_link_libraries(workspace_consumer PRIVATE workspace::workspace)
if(NOT MSVC)
  target_compile_options(workspace_consumer PRIVATE -Wall -Wextra)
endif()
