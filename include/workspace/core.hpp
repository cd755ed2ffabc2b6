// The core layer: results, options, errors, and the Workspace concepts.
#pragma once

#include <workspace/core/concepts.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/version.hpp>
