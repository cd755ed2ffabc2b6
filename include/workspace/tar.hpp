// Tar archives as streams, in constant memory: the writer, the push reader, the safe extractor
// and the single-file adapters. Used by the back ends that move files as archives (Docker's
// archive API, a Kubernetes exec of tar).
#pragma once

#include <workspace/tar/entry.hpp>
#include <workspace/tar/extractor.hpp>
#include <workspace/tar/reader.hpp>
#include <workspace/tar/single_file.hpp>
#include <workspace/tar/writer.hpp>
