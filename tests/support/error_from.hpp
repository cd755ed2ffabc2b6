// Test support: the workspace::Error a call throws, for tests that inspect its code and text.
#pragma once

#include <workspace/core/error.hpp>

#include <gtest/gtest.h>

namespace workspace_test {

// Runs `f` and returns the workspace::Error it throws; records a failure when it throws none.
template <class F>
workspace::Error error_from(F&& f) {
  try {
    f();
  } catch (const workspace::Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected a workspace::Error";
  return workspace::Error(workspace::errc::io_error, "nothing thrown");
}

}  // namespace workspace_test
