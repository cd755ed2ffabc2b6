# workspace_dev: the strict flags for our own tests, examples and benchmarks. Consumers of the
# library target never see them. -Wnull-dereference is left out: GCC 12 reports false positives
# inside libstdc++ at -O2.
include_guard(GLOBAL)

add_library(workspace_dev INTERFACE)
target_link_libraries(workspace_dev INTERFACE workspace::workspace)
target_compile_options(workspace_dev INTERFACE
  -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow -Wnon-virtual-dtor
  -Wold-style-cast -Wcast-align -Woverloaded-virtual -Werror)

if(WORKSPACE_SANITIZE)
  target_compile_options(workspace_dev INTERFACE
    -fsanitize=${WORKSPACE_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(workspace_dev INTERFACE -fsanitize=${WORKSPACE_SANITIZE})
endif()
