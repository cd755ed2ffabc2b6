// One of two translation units that include every public header and use a little of each, so
// that their inline functions are emitted in both: linking them into one program (odr.test.cpp)
// fails on any definition in a header that is not inline.
#include "workspace_all_headers.hpp"

#include <string>
#include <typeinfo>

namespace odr_a {

std::string names() {
  workspace::LocalWorkspace local(".");
  workspace::testing::FakeWorkspace fake;
  const auto url = workspace::http::Url::parse("http://127.0.0.1:1/a");
  workspace::WorkspaceConfig config;
  return std::string(local.working_dir()) + fake.working_dir() + url.host + std::string(to_string(config.mode)) +
         typeid(workspace::CommandResult).name() + typeid(workspace::DockerWorkspace).name() +
         typeid(workspace::RemoteWorkspace).name() + typeid(workspace::APIRemoteWorkspace).name() +
         typeid(workspace::DaytonaWorkspace).name() + typeid(workspace::AnyWorkspace).name();
}

const workspace::Version& version() { return workspace::version; }

}  // namespace odr_a
