// SPDX-License-Identifier: BSL-1.0
// The demo's timeline picture: claims/s per backend over time, with the
// story's events (the kill, the DNS change) marked, drawn by gnuplot as SVG.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace qorb::demo {

class timeline {
 public:
  /// Claims handed out so far, per backend (cumulative), at `t` seconds, for
  /// the backends in service then: a backend missing from a sample is drawn
  /// as no line over the intervals next to it (not as a rate of zero).
  void sample(double t, const std::map<std::string, unsigned long long>& claims);
  /// An event to mark on the time axis.
  void mark(double t, std::string label);
  /// A line printed under the plot (the story's headline figures).
  void caption(std::string line);

  /// Writes the samples as a gnuplot data file and script into `dir` and
  /// runs gnuplot to draw `svg`. Returns an empty string on success, else
  /// why not (gnuplot missing or failing).
  std::string write_svg(const std::string& dir, const std::string& svg,
                        const std::string& title) const;

 private:
  struct point {
    double t;
    std::map<std::string, unsigned long long> claims;
  };
  std::vector<point> points_;
  std::vector<std::pair<double, std::string>> marks_;
  std::vector<std::string> captions_;
};

}  // namespace qorb::demo
