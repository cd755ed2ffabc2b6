// The local layer: LocalWorkspace.
#pragma once

#include <workspace/core.hpp>
#include <workspace/local/local_workspace.hpp>
