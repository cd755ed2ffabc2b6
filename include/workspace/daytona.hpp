// DaytonaWorkspace: a Daytona sandbox through Daytona's REST and toolbox APIs.
#pragma once

#include <workspace/daytona/daytona_workspace.hpp>
