# workspace_docs: the API reference, generated from the public headers by Doxygen, with the
# README as its main page (build/docs/html/index.html). Not part of `all`.
include_guard(GLOBAL)

find_package(Doxygen)
if(NOT DOXYGEN_FOUND)
  message(STATUS "workspace: Doxygen not found, no workspace_docs target (Debian: apt-get install doxygen)")
  return()
endif()

set(DOXYGEN_PROJECT_NAME "workspace")
set(DOXYGEN_PROJECT_NUMBER "${PROJECT_VERSION}")
set(DOXYGEN_PROJECT_BRIEF "${PROJECT_DESCRIPTION}")
set(DOXYGEN_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/docs")
set(DOXYGEN_USE_MDFILE_AS_MAINPAGE "${PROJECT_SOURCE_DIR}/README.md")
set(DOXYGEN_STRIP_FROM_PATH "${PROJECT_SOURCE_DIR}/include")
set(DOXYGEN_STRIP_FROM_INC_PATH "${PROJECT_SOURCE_DIR}/include")
set(DOXYGEN_FULL_PATH_NAMES YES)
# The headers document themselves in plain // comments just above what they describe: read
# those as documentation (comments inside function bodies are left out: INLINE_INLINE_SOURCES
# and HIDE_IN_BODY_DOCS).
set(DOXYGEN_INPUT_FILTER "sed -e 's|^\\([ ]*\\)// |\\1/// |'")
set(DOXYGEN_HIDE_IN_BODY_DOCS YES)
set(DOXYGEN_JAVADOC_AUTOBRIEF YES)
set(DOXYGEN_EXTRACT_ALL YES)
set(DOXYGEN_EXCLUDE_PATTERNS "*/detail/*")
set(DOXYGEN_EXCLUDE_SYMBOLS "detail" "*::detail" "*::detail::*")
# The versioned inline namespace is an implementation device: show workspace:: names.
set(DOXYGEN_ENABLE_PREPROCESSING YES)
set(DOXYGEN_MACRO_EXPANSION YES)
set(DOXYGEN_EXPAND_ONLY_PREDEF YES)
set(DOXYGEN_PREDEFINED "WORKSPACE_NAMESPACE_BEGIN=namespace workspace {" "WORKSPACE_NAMESPACE_END=}")
set(DOXYGEN_GENERATE_TREEVIEW YES)
set(DOXYGEN_WARN_IF_UNDOCUMENTED NO)
set(DOXYGEN_QUIET YES)

doxygen_add_docs(workspace_docs
  "${PROJECT_SOURCE_DIR}/include/workspace" "${PROJECT_SOURCE_DIR}/README.md"
  COMMENT "API reference in ${PROJECT_BINARY_DIR}/docs/html")
