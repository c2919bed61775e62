#pragma once
// Images named on the command line, shared by the commands that decode them:
//   --max-pixels N   the decompression-bomb limit of data/image.h (max_image_pixels), checked
//                    on each file's header before decoding
//   --image F...     (predict) files, folders and CSV lists of paths, expanded in order
#include <string>
#include <vector>

#include "apps/args.h"

namespace scalpel::cli {

void add_max_pixels_flag(Args& args);
// Sets data::set_max_image_pixels from the flag; Error naming it unless it is a positive integer.
void apply_max_pixels_flag(const Args& args);

// Each entry as given, expanded:
//  - a folder: every image file in it and its subfolders (by extension, data/image.h
//    has_image_extension; hidden files skipped), sorted by path; Error when it holds none;
//  - a `.csv` file: the `path` column of its header row (other columns ignored, so a
//    split.csv or predictions.csv works as is), rows in file order; relative paths are taken
//    from the working directory, as scalpel writes them; Error without that column or rows;
//  - anything else: itself (checked when it is read).
std::vector<std::string> expand_image_inputs(const std::vector<std::string>& inputs);

}  // namespace scalpel::cli
