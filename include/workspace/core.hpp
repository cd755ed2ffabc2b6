// The core layer: results, options, errors, the Workspace concepts, and the asynchronous model.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/concepts.hpp>
#include <workspace/core/deadline.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/operations.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/version.hpp>
