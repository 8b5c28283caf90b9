// SPDX-License-Identifier: BSL-1.0
#include "timeline.hpp"

#include "processes.hpp"

#include <fmt/format.h>

#include <fstream>
#include <set>

namespace qorb::demo {

void timeline::sample(double t, const std::map<std::string, unsigned long long>& claims) {
  points_.push_back({t, claims});
}

void timeline::mark(double t, std::string label) { marks_.emplace_back(t, std::move(label)); }

void timeline::caption(std::string line) { captions_.push_back(std::move(line)); }

namespace {

// "echo002.test.com.:127.0.0.1:40001" -> "echo002"; other names as they are.
std::string short_name(const std::string& name) {
  const auto dot = name.find('.');
  if (dot == std::string::npos || dot == 0 || name[0] < 'a' || name[0] > 'z') return name;
  return name.substr(0, dot);
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace

std::string timeline::write_svg(const std::string& dir, const std::string& svg,
                                const std::string& title) const {
  const auto gnuplot = find_program("gnuplot");
  if (gnuplot.empty())
    return "gnuplot is not installed (scripts/install-deps.sh installs gnuplot-nox)";
  if (points_.size() < 2) return "fewer than two samples";

  std::set<std::string> names;
  for (const auto& p : points_)
    for (const auto& [name, n] : p.claims) names.insert(name);

  // Rates between consecutive samples, at the middle of each interval.
  const auto data_path = dir + "/timeline.dat";
  {
    std::ofstream data(data_path);
    data << "# t";
    for (const auto& name : names) data << ' ' << short_name(name);
    data << '\n';
    for (std::size_t i = 1; i < points_.size(); ++i) {
      const auto& a = points_[i - 1];
      const auto& b = points_[i];
      const double dt = b.t - a.t;
      if (dt <= 0) continue;
      data << fmt::format("{:.3f}", (a.t + b.t) / 2);
      for (const auto& name : names) {
        const auto ia = a.claims.find(name);
        const auto ib = b.claims.find(name);
        // Out of service at either end: no point (gnuplot breaks the line).
        if (ia == a.claims.end() || ib == b.claims.end() || ib->second < ia->second) {
          data << " NaN";
          continue;
        }
        data << fmt::format(" {:.1f}", static_cast<double>(ib->second - ia->second) / dt);
      }
      data << '\n';
    }
    if (!data) return "cannot write " + data_path;
  }

  const auto script_path = dir + "/timeline.gp";
  {
    std::ofstream gp(script_path);
    gp << "set terminal svg size 960,480 dynamic font 'sans,12' background rgb 'white'\n"
       << "set output " << quoted(svg) << "\n"
       << "set title " << quoted(title) << " noenhanced\n"
       << "set xlabel 'time since the start (s)'\n"
       << "set ylabel 'claims/s'\n"
       << "set grid\n"
       << "set key outside right top noenhanced\n"
       << fmt::format("set xrange [0:{:.1f}]\n", points_.back().t) << "set yrange [0:*]\n";
    // The headline figures under the plot, one line each.
    if (!captions_.empty()) {
      gp << fmt::format("set bmargin {}\n", 4 + 2 * captions_.size());
      int line = 1000;
      double y = 0.02 + 0.045 * static_cast<double>(captions_.size() - 1);
      for (const auto& text : captions_) {
        gp << fmt::format("set label {} {} at screen 0.02, screen {:.3f} left noenhanced\n", line++,
                          quoted(text), y);
        y -= 0.045;
      }
    }
    int n = 1;
    for (const auto& [t, label] : marks_) {
      gp << fmt::format(
                "set arrow {} from {:.3f}, graph 0 to {:.3f}, graph 1 nohead dt 2 lw 2 "
                "lc rgb '#cc0000'\n",
                n, t, t)
         << fmt::format(
                "set label {} {} at {:.3f}, graph 0.97 offset 0.5,0 left noenhanced "
                "tc rgb '#cc0000'\n",
                n, quoted(label), t);
      ++n;
    }
    gp << "plot ";
    int column = 2;
    for (const auto& name : names) {
      if (column > 2) gp << ", \\\n     ";
      gp << quoted(data_path) << " using 1:" << column << " with lines lw 2 title "
         << quoted(short_name(name));
      ++column;
    }
    gp << '\n';
    if (!gp) return "cannot write " + script_path;
  }

  std::string out;
  if (run({gnuplot, script_path}, out) != 0) return "gnuplot failed: " + out;
  return {};
}

}  // namespace qorb::demo
