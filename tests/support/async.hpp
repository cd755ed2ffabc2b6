// Test support for the asynchronous API: how many threads the process has (the library must
// start none of its own), and whether an operation completed as a cancelled one.
#pragma once

#include <asio/error.hpp>
#include <gtest/gtest.h>

#include <cstddef>
#include <exception>
#include <filesystem>
#include <system_error>

namespace workspace_test {

inline std::size_t thread_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// Whether `failure` is the operation_aborted a cancelled operation completes with:
// EXPECT_TRUE(ts::is_aborted(failure)).
inline ::testing::AssertionResult is_aborted(std::exception_ptr failure) {
  if (!failure) return ::testing::AssertionFailure() << "the operation completed without an error";
  try {
    std::rethrow_exception(failure);
  } catch (const std::system_error& e) {
    if (e.code() == asio::error::operation_aborted) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "completed with " << e.code().message() << ": " << e.what();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "completed with a non-system error: " << e.what();
  }
  return ::testing::AssertionFailure() << "completed with something not an exception";
}

}  // namespace workspace_test
