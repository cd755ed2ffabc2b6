// RemoteWorkspace: the OpenHands agent-server protocol.
#pragma once

#include <workspace/agent/remote_workspace.hpp>
