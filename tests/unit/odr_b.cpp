// The second of the two translation units; see odr_a.cpp.
#include "workspace_all_headers.hpp"

#include <string>
#include <typeinfo>

namespace odr_b {

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

}  // namespace odr_b
