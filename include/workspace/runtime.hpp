// APIRemoteWorkspace: a runtime provisioned through the OpenHands runtime API.
#pragma once

#include <workspace/runtime/api_remote_workspace.hpp>
