// Progress of a long write: periodic lines with the bytes the directory holds, a last
// line with the total, and nothing for a write that ends before the first report.
#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "write_progress.hpp"

#include "../models/model_fixtures.hpp"

using namespace troupe;

TEST_CASE("engine: a long write reports the bytes written so far, then the total", "[engine][progress]") {
  const auto dir = test::scratch_dir("write_progress");
  std::ostringstream out;
  {
    engine::WriteProgress progress("saving out/actor", dir, out, 0.05);
    std::ofstream(dir / "model.safetensors") << std::string(2048, 'x');
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  const auto text = out.str();
  CHECK(text.find("saving out/actor: 2.0 KiB so far") != std::string::npos);
  CHECK(text.find("saving out/actor: 2.0 KiB written in ") != std::string::npos);
  CHECK(text.find('\r') == std::string::npos);  // not a terminal: plain lines

  std::ostringstream quiet;
  { engine::WriteProgress progress("saving out/critic", dir, quiet, 60.0); }
  CHECK(quiet.str().empty());
}
