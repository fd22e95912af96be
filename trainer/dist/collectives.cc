#include "trainer/dist/collectives.h"

#include <cstdio>
#include <cstdlib>

namespace qforge {

void SingleProcess::Abort(const std::string& message) {
  std::fprintf(stderr, "qforge: %s\n", message.c_str());
  std::exit(1);
}

}  // namespace qforge
