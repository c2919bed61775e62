#pragma once
// Datasets: lists of samples (image path, class, group, metadata, optional mask) read from
// the layouts medical imaging teams use. Nothing is decoded here; a missing or unreadable
// file is reported through Warnings (see warnings.h) and left out.
//
// Layouts (detect_layout() picks one for a directory):
//   image_folder        root/<class>/**/<image>      (torchvision ImageFolder)
//   split_folders       root/{train,val,test}/<class>/**/<image> (Kaggle chest-xray layout;
//                       "valid"/"validation" are read as val)
//   covid_radiography   root/<class>/images/<image> with root/<class>/masks/<same name>
//   image_mask_pairs    root/images/<image> with root/masks/<same stem>.<any image ext>
//   ham10000            root/HAM10000_metadata.csv (image_id, dx, lesion_id, age, sex,
//                       localization), images anywhere below root
//   isic2019            root/ISIC_2019_Training_GroundTruth.csv (image + one-hot columns),
//                       optional root/ISIC_2019_Training_Metadata.csv (age_approx,
//                       anatom_site_general, sex, lesion_id), images anywhere below root
//   medmnist            a MedMNIST .npz file (not a directory) with its official train/val/test
//                       splits; samples are named FILE.npz:SPLIT/INDEX (see medmnist.h)
// Classes: folder layouts sort class names (byte order); CSV label columns sort distinct
// values; one-hot layouts keep column order. Files are sorted by path within a class, so the
// sample order is ImageFolder's. Hidden files and folders (".name") are ignored.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/warnings.h"

namespace scalpel::data {

struct Sample {
  std::string path;
  int64_t label = -1;       // class index; -1 when the dataset has no classes (segmentation)
  std::string group;        // patient / lesion id; empty means the sample is its own group
  std::string mask_path;    // empty when the sample has no mask
  std::string split;        // "train", "val", "test" when the layout fixes it, else empty
  std::map<std::string, std::string> metadata;  // e.g. age, sex, site (as written in the CSV)
};

struct Dataset {
  std::string root;
  std::string layout;
  std::vector<std::string> classes;
  std::vector<Sample> samples;

  bool has_groups() const;          // some sample has a group id
  bool has_masks() const;           // some sample has a mask
  bool has_fixed_splits() const;    // some sample has a split from the layout
  std::vector<int64_t> class_counts() const;  // samples per class, classes.size() entries
  // Index of a class name; Error listing the classes when absent.
  int64_t class_index(const std::string& name) const;
  // The samples with the given indices (same classes, layout and root).
  Dataset subset(const std::vector<size_t>& indices) const;
  // The samples whose `split` equals `split`.
  Dataset split_part(const std::string& split) const;
};

struct LoadOptions {
  // Also read each image's header (cheap: no pixel decode) and leave out files that are
  // empty, truncated before the header, or in an unsupported format, with a warning. (Masks
  // are checked against their image's header either way.)
  bool check_images = true;
};

// Column mapping for a CSV-labelled dataset.
struct CsvSpec {
  std::string csv;                      // the labels file
  std::vector<std::string> image_dirs;  // searched recursively; default: the CSV's folder
  std::string path_column = "image";    // file name, relative path, or id without extension
  std::string label_column;             // one column holding the class name, or ...
  std::vector<std::string> one_hot_columns;  // ... one 0/1 column per class (columns with no 1 are dropped)
  std::string group_column;             // optional patient / lesion id
  // Metadata to carry: CSV column -> key in Sample::metadata.
  std::vector<std::pair<std::string, std::string>> metadata_columns;
  // Optional second CSV joined on `metadata_id_column` == the path column's value.
  std::string metadata_csv;
  std::string metadata_id_column = "image";
  std::string metadata_group_column;    // group id taken from the metadata CSV when set
  std::vector<std::pair<std::string, std::string>> metadata_csv_columns;
};

Dataset load_image_folder(const std::string& root, Warnings& warnings, const LoadOptions& options = {});
Dataset load_split_folders(const std::string& root, Warnings& warnings, const LoadOptions& options = {});
Dataset load_covid_radiography(const std::string& root, Warnings& warnings, const LoadOptions& options = {});
// Segmentation pairs: masks matched to images by file stem (a "_mask" suffix on the mask's
// stem is accepted). Images without a mask are left out with a warning.
Dataset load_image_mask_pairs(const std::string& image_dir, const std::string& mask_dir,
                              Warnings& warnings, const LoadOptions& options = {});
Dataset load_csv_dataset(const CsvSpec& spec, Warnings& warnings, const LoadOptions& options = {});
CsvSpec ham10000_spec(const std::string& root);  // HAM10000 column names, files below root
CsvSpec isic2019_spec(const std::string& root);  // ISIC 2019 column names, files below root

// "image_folder", "split_folders", "covid_radiography", "image_mask_pairs", "ham10000" or
// "isic2019" for a directory, "medmnist" for an .npz file (see the top of this file); Error when
// `root` is neither.
std::string detect_layout(const std::string& root);
// Detects the layout and loads it.
Dataset load_dataset(const std::string& root, Warnings& warnings, const LoadOptions& options = {});

// A fingerprint of the samples' contents: "fnv1a64:" and 16 hex digits of the FNV-1a hash over,
// per sample in order, its class name and its file's bytes (an .npz sample's pixels). Equal for
// the same images and labels wherever they are stored; Error naming an unreadable file.
std::string content_fingerprint(const Dataset& dataset);

// Error unless at least two classes have samples (classification needs two).
void check_classification(const Dataset& dataset);

}  // namespace scalpel::data
