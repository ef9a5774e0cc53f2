// kiln::version() reports the CMake project version, the one build_info() and saved models carry.
#include <gtest/gtest.h>

#include <regex>

#include "kiln/kiln.h"

TEST(Version, EqualsTheCMakeProjectVersion) {
  EXPECT_EQ(kiln::version(), KILN_PROJECT_VERSION);
  EXPECT_TRUE(std::regex_match(kiln::version(), std::regex(R"(\d+\.\d+\.\d+)"))) << kiln::version();
}

TEST(Version, BuildInfoCarriesTheSameVersion) { EXPECT_EQ(kiln::build_info().kiln_version, kiln::version()); }
