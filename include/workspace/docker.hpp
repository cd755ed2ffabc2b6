// DockerWorkspace and the Docker Engine API client it is built on.
#pragma once

#include <workspace/docker/docker_workspace.hpp>
#include <workspace/docker/engine.hpp>
#include <workspace/tar.hpp>
