// workspace::Error and its category.
#include <workspace/core/error.hpp>

#include <gtest/gtest.h>

#include <string>
#include <system_error>

namespace {

using workspace::errc;
using workspace::Error;

TEST(Error, IsASystemErrorWithTheLibrarysCategory) {
  const Error e(errc::not_found, "execute_command: working directory '/x' does not exist");
  const std::system_error& base = e;
  EXPECT_EQ(base.code().category().name(), std::string("workspace"));
  EXPECT_EQ(e.code(), errc::not_found);
  EXPECT_EQ(std::string(e.what()),
            "execute_command: working directory '/x' does not exist: not found");
}

TEST(Error, CodesCompareWithTheMatchingStandardConditions) {
  EXPECT_EQ(make_error_code(errc::not_found), std::errc::no_such_file_or_directory);
  EXPECT_EQ(make_error_code(errc::invalid_argument), std::errc::invalid_argument);
  EXPECT_EQ(make_error_code(errc::timed_out), std::errc::timed_out);
  EXPECT_EQ(make_error_code(errc::cancelled), std::errc::operation_canceled);
  EXPECT_EQ(make_error_code(errc::unsupported), std::errc::not_supported);
  EXPECT_NE(make_error_code(errc::protocol_error), std::errc::invalid_argument);
  // A plain std::error_code can be assigned from the enum.
  std::error_code code = errc::authentication_failed;
  EXPECT_EQ(code.message(), "authentication failed");
}

TEST(Error, EveryCodeHasAMessage) {
  for (int value = 1; value <= static_cast<int>(errc::bad_state); ++value) {
    const std::string message = workspace::error_category().message(value);
    EXPECT_FALSE(message.empty());
    EXPECT_NE(message, "unknown workspace error") << value;
  }
  EXPECT_EQ(workspace::error_category().message(999), "unknown workspace error");
}

TEST(Error, CarriesOperatingSystemCodesToo) {
  const Error e(std::error_code(ENOENT, std::system_category()), "spawn");
  EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
}

}  // namespace
