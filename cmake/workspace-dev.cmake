# workspace_dev: the strict flags for our own tests, examples and benchmarks. Consumers of the
# library target never see them.
include_guard(GLOBAL)

add_library(workspace_dev INTERFACE)
target_link_libraries(workspace_dev INTERFACE workspace::workspace)
target_compile_options(workspace_dev INTERFACE
  -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow -Wnon-virtual-dtor
  -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wnull-dereference -Werror)

if(WORKSPACE_SANITIZE)
  target_compile_options(workspace_dev INTERFACE
    -fsanitize=${WORKSPACE_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(workspace_dev INTERFACE -fsanitize=${WORKSPACE_SANITIZE})
endif()
