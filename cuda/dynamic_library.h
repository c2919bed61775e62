#pragma once
// Opening a vendor library at run time (dlopen), for the libraries a scalpel built with them
// must still start without: cuDNN (cuda/cudnn/loader.h) and NCCL (cuda/nccl.h).
#include <string>
#include <vector>

namespace scalpel::cuda {

// Opens the first of `candidates` (file names or paths) that dlopen accepts; returns its handle,
// or nullptr with `error` naming every candidate and dlopen's reason for each.
void* open_first(const std::vector<std::string>& candidates, std::string& error);

}  // namespace scalpel::cuda
