#include <gtest/gtest.h>

#include "data/dataset.h"
#include "data_test_util.h"
#include "tensor/error.h"

namespace scalpel::data {
namespace {
using testing::pattern_image;
using testing::TempDir;
using testing::write_image;
using testing::write_text;

std::vector<std::string> names(const Dataset& d) {
  std::vector<std::string> out;
  for (const Sample& s : d.samples) out.push_back(std::filesystem::path(s.path).filename().string());
  return out;
}

TEST(Dataset, ImageFolderOrderAndBadFiles) {
  TempDir dir;
  write_image(dir / "b_pneumonia/z.png", pattern_image(8, 8, 1, 1));
  write_image(dir / "b_pneumonia/a.jpg", pattern_image(8, 8, 3, 2));
  write_image(dir / "b_pneumonia/sub/m.bmp", pattern_image(8, 8, 3, 3));
  write_image(dir / "a_normal/x.png", pattern_image(8, 8, 1, 4));
  write_text(dir / "a_normal/broken.jpg", "");                       // zero bytes
  write_text(dir / "a_normal/notes.txt", "hello");                   // unsupported format
  write_text(dir / "a_normal/.DS_Store", "junk");                    // hidden: ignored
  std::filesystem::create_directories(dir / "c_empty");
  std::filesystem::create_directories(dir / ".ipynb_checkpoints");  // hidden: not a class
  Warnings warnings;
  const Dataset d = load_dataset(dir.str(), warnings);
  EXPECT_EQ(d.layout, "image_folder");
  EXPECT_EQ(d.classes, (std::vector<std::string>{"a_normal", "b_pneumonia", "c_empty"}));
  EXPECT_EQ(names(d), (std::vector<std::string>{"x.png", "a.jpg", "z.png", "m.bmp"}));
  EXPECT_EQ(d.samples[0].label, 0);
  EXPECT_EQ(d.samples[3].label, 1);
  EXPECT_EQ(d.class_counts(), (std::vector<int64_t>{1, 3, 0}));
  EXPECT_EQ(warnings.count(), 3u);  // broken.jpg, notes.txt, empty class folder
  const std::string report = warnings.report();
  EXPECT_NE(report.find("broken.jpg"), std::string::npos);
  EXPECT_NE(report.find("notes.txt"), std::string::npos);
  EXPECT_NE(report.find("c_empty"), std::string::npos);
  EXPECT_NE(report.find("3 warnings"), std::string::npos);
  check_classification(d);

  Warnings strict(/*strict=*/true);
  EXPECT_THROW(load_dataset(dir.str(), strict), Error);
}

TEST(Dataset, FewerThanTwoClassesIsAnError) {
  TempDir dir;
  write_image(dir / "only/a.png", pattern_image(8, 8, 1, 1));
  Warnings w;
  const Dataset d = load_image_folder(dir.str(), w);
  EXPECT_THROW(check_classification(d), Error);
  TempDir empty;
  EXPECT_THROW(load_image_folder(empty.str(), w), Error);
  EXPECT_THROW(load_dataset(empty / "nope", w), Error);
}

TEST(Dataset, SplitFolders) {
  TempDir dir;
  write_image(dir / "train/NORMAL/a.png", pattern_image(8, 8, 1, 1));
  write_image(dir / "train/PNEUMONIA/b.png", pattern_image(8, 8, 1, 2));
  write_image(dir / "val/NORMAL/c.png", pattern_image(8, 8, 1, 3));
  write_image(dir / "test/PNEUMONIA/d.png", pattern_image(8, 8, 1, 4));
  Warnings w;
  const Dataset d = load_dataset(dir.str(), w);
  EXPECT_EQ(d.layout, "split_folders");
  EXPECT_EQ(d.classes, (std::vector<std::string>{"NORMAL", "PNEUMONIA"}));
  ASSERT_EQ(d.samples.size(), 4u);
  EXPECT_TRUE(d.has_fixed_splits());
  EXPECT_EQ(d.split_part("train").samples.size(), 2u);
  EXPECT_EQ(d.split_part("val").samples[0].label, 0);
  EXPECT_EQ(d.split_part("test").samples[0].label, 1);
  EXPECT_EQ(w.count(), 0u);
}

TEST(Dataset, CovidRadiographyWithMasks) {
  TempDir dir;
  for (const char* cls : {"COVID", "Normal"})
    for (int i = 0; i < 2; ++i) {
      const std::string name = std::string(cls) + "-" + std::to_string(i) + ".png";
      write_image(dir / (std::string(cls) + "/images/" + name), pattern_image(30, 30, 1, i));
      // Smaller mask with the same aspect ratio is fine (the real database has 256 vs 299).
      write_image(dir / (std::string(cls) + "/masks/" + name), Image(20, 20, 1, 255));
    }
  write_image(dir / "Normal/images/Normal-9.png", pattern_image(30, 30, 1, 9));  // no mask
  write_image(dir / "Normal/masks/Normal-1.png", Image(30, 10, 1, 255));         // wrong ratio
  Warnings w;
  const Dataset d = load_dataset(dir.str(), w);
  EXPECT_EQ(d.layout, "covid_radiography");
  EXPECT_EQ(d.classes, (std::vector<std::string>{"COVID", "Normal"}));
  ASSERT_EQ(d.samples.size(), 5u);
  EXPECT_FALSE(d.samples[0].mask_path.empty());
  EXPECT_TRUE(d.samples[3].mask_path.empty());  // Normal-1: mask ignored
  EXPECT_TRUE(d.samples[4].mask_path.empty());  // Normal-9: no mask
  EXPECT_EQ(w.count(), 2u);
  EXPECT_NE(w.report().find("Normal-9.png"), std::string::npos);
  EXPECT_NE(w.report().find("30x10"), std::string::npos);
}

TEST(Dataset, ImageMaskPairs) {
  TempDir dir;
  write_image(dir / "images/case1.png", pattern_image(16, 16, 1, 1));
  write_image(dir / "images/case2.jpg", pattern_image(16, 16, 3, 2));
  write_image(dir / "images/case3.png", pattern_image(16, 16, 1, 3));
  write_image(dir / "masks/case1.png", Image(16, 16, 1, 0));
  write_image(dir / "masks/case2_mask.png", Image(16, 16, 1, 255));
  Warnings w;
  const Dataset d = load_dataset(dir.str(), w);
  EXPECT_EQ(d.layout, "image_mask_pairs");
  ASSERT_EQ(d.samples.size(), 2u);
  EXPECT_TRUE(d.samples[1].mask_path.ends_with("case2_mask.png"));
  EXPECT_EQ(d.samples[0].label, -1);
  EXPECT_EQ(w.count(), 1u);  // case3 has no mask
}

TEST(Dataset, Ham10000WithGroupsAndMetadata) {
  TempDir dir;
  write_text(dir / "HAM10000_metadata.csv",
             "lesion_id,image_id,dx,dx_type,age,sex,localization\n"
             "HAM_1,ISIC_001,nv,histo,45.0,male,back\n"
             "HAM_1,ISIC_002,nv,histo,45.0,male,back\n"
             "HAM_2,ISIC_003,mel,histo,60.0,female,face\n"
             "HAM_3,ISIC_004,bkl,consensus,,unknown,trunk\n"
             "HAM_4,ISIC_999,mel,histo,30.0,male,scalp\n");
  write_image(dir / "HAM10000_images_part_1/ISIC_001.jpg", pattern_image(12, 9, 3, 1));
  write_image(dir / "HAM10000_images_part_1/ISIC_002.jpg", pattern_image(12, 9, 3, 2));
  write_image(dir / "HAM10000_images_part_2/ISIC_003.jpg", pattern_image(12, 9, 3, 3));
  write_image(dir / "HAM10000_images_part_2/ISIC_004.jpg", pattern_image(12, 9, 3, 4));
  Warnings w;
  const Dataset d = load_dataset(dir.str(), w);
  EXPECT_EQ(d.layout, "ham10000");
  EXPECT_EQ(d.classes, (std::vector<std::string>{"bkl", "mel", "nv"}));
  ASSERT_EQ(d.samples.size(), 4u);
  EXPECT_EQ(names(d), (std::vector<std::string>{"ISIC_004.jpg", "ISIC_003.jpg", "ISIC_001.jpg", "ISIC_002.jpg"}));
  EXPECT_EQ(d.samples[2].group, "HAM_1");
  EXPECT_EQ(d.samples[1].metadata.at("site"), "face");
  EXPECT_EQ(d.samples[1].metadata.at("age"), "60.0");
  EXPECT_EQ(d.samples[1].metadata.at("sex"), "female");
  EXPECT_TRUE(d.has_groups());
  EXPECT_EQ(w.count(), 1u);  // ISIC_999 missing
  EXPECT_NE(w.report().find("ISIC_999"), std::string::npos);
  EXPECT_NE(w.report().find("line 6"), std::string::npos);
}

TEST(Dataset, Isic2019OneHotWithMetadataCsv) {
  TempDir dir;
  write_text(dir / "ISIC_2019_Training_GroundTruth.csv",
             "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\n"
             "ISIC_1,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0\n"
             "ISIC_2,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0\n"
             "ISIC_3,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0,0.0\n"
             "ISIC_4,0.0,1.0,0.0,0.0,0.0,0.0,0.0,1.0,0.0\n");
  write_text(dir / "ISIC_2019_Training_Metadata.csv",
             "image,age_approx,anatom_site_general,lesion_id,sex\n"
             "ISIC_1,55.0,anterior torso,BCN_1,male\n"
             "ISIC_2,30.0,head/neck,,female\n");
  for (int i = 1; i <= 4; ++i) write_image(dir / ("imgs/ISIC_" + std::to_string(i) + ".jpg"), pattern_image(8, 8, 3, i));
  Warnings w;
  const Dataset d = load_dataset(dir.str(), w);
  EXPECT_EQ(d.layout, "isic2019");
  EXPECT_EQ(d.classes, (std::vector<std::string>{"MEL", "NV", "SCC"}));  // columns with positives
  ASSERT_EQ(d.samples.size(), 3u);
  EXPECT_EQ(d.samples[0].group, "BCN_1");
  EXPECT_EQ(d.samples[0].metadata.at("site"), "anterior torso");
  EXPECT_EQ(d.samples[1].group, "");
  EXPECT_EQ(d.samples[2].label, 2);
  EXPECT_EQ(w.count(), 1u);  // ISIC_4 has two labels
}

TEST(Dataset, GenericCsvColumnsAndMissingFile) {
  TempDir dir;
  write_text(dir / "labels.csv", "file,diagnosis,patient,age\nimgs/p1.png,sick,P1,70\nimgs/p2.png,healthy,P2,33\nimgs/gone.png,sick,P3,50\n");
  write_image(dir / "imgs/p1.png", pattern_image(8, 8, 1, 1));
  write_image(dir / "imgs/p2.png", pattern_image(8, 8, 1, 2));
  CsvSpec spec;
  spec.csv = dir / "labels.csv";
  spec.path_column = "file";
  spec.label_column = "diagnosis";
  spec.group_column = "patient";
  spec.metadata_columns = {{"age", "age"}};
  Warnings w;
  const Dataset d = load_csv_dataset(spec, w);
  EXPECT_EQ(d.classes, (std::vector<std::string>{"healthy", "sick"}));
  ASSERT_EQ(d.samples.size(), 2u);
  EXPECT_EQ(d.samples[0].metadata.at("age"), "33");
  EXPECT_EQ(d.samples[1].group, "P1");
  EXPECT_EQ(w.count(), 1u);
  EXPECT_NE(w.report().find("gone.png"), std::string::npos);
  Warnings strict(true);
  EXPECT_THROW(load_csv_dataset(spec, strict), Error);
  spec.label_column = "nonexistent";
  EXPECT_THROW(load_csv_dataset(spec, w), Error);
}

}  // namespace
}  // namespace scalpel::data
