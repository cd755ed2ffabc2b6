// The umbrella header: every workspace type and the layers beneath them. Include a layer's own
// header (workspace/local.hpp, workspace/docker.hpp, ...) to compile only what you use.
#pragma once

#include <workspace/agent.hpp>
#include <workspace/any_workspace.hpp>
#include <workspace/core.hpp>
#include <workspace/daytona.hpp>
#include <workspace/docker.hpp>
#include <workspace/http.hpp>
#include <workspace/local.hpp>
#include <workspace/runtime.hpp>
