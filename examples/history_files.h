// Writes a training History as CSV (one row per epoch) and as an SVG chart of loss and accuracy,
// so a run can be inspected in a spreadsheet or a browser. Used by the examples.
#pragma once

#include <kiln/kiln.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace examples {

/// epoch,loss,accuracy,val_loss,val_accuracy,... (columns as recorded).
inline void write_history_csv(const kiln::History& h, const std::string& path) {
  std::ofstream out(path);
  if (!out) throw kiln::Error("history", "cannot write " + path + "; expected a writable path");
  out << "epoch";
  for (const auto& [name, values] : h.history) out << ',' << name;
  out << '\n';
  for (std::size_t i = 0; i < h.epoch.size(); ++i) {
    out << h.epoch[i] + 1;
    for (const auto& [name, values] : h.history) out << ',' << (i < values.size() ? values[i] : NAN);
    out << '\n';
  }
}

/// Two panels side by side: losses (left) and accuracies (right), one polyline per series.
inline void write_history_svg(const kiln::History& h, const std::string& path) {
  constexpr double W = 420, H = 300, M = 60;
  const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"};
  std::ostringstream svg;
  svg.precision(3);  // axis labels: three significant digits are enough to read a curve
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='" << 2 * W << "' height='" << H
      << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
  const std::string panels[] = {"loss", "accuracy"};
  for (int p = 0; p < 2; ++p) {
    std::vector<std::pair<std::string, std::vector<double>>> series;
    for (const auto& [name, values] : h.history)
      if (name == panels[p] || name == "val_" + panels[p]) series.emplace_back(name, values);
    const double x0 = p * W;
    svg << "<text x='" << x0 + W / 2 << "' y='18' text-anchor='middle'>" << panels[p] << "</text>\n";
    if (series.empty()) continue;
    double lo = INFINITY, hi = -INFINITY;
    std::size_t n = 0;
    for (const auto& [name, v] : series)
      for (double x : v)
        if (std::isfinite(x)) lo = std::min(lo, x), hi = std::max(hi, x), n = std::max(n, v.size());
    if (!(hi > lo)) hi = lo + 1;
    auto px = [&](std::size_t i) { return x0 + M + (W - 2 * M) * (n > 1 ? double(i) / double(n - 1) : 0.5); };
    auto py = [&](double v) { return H - M - (H - 2 * M) * (v - lo) / (hi - lo); };
    svg << "<rect x='" << x0 + M << "' y='" << M << "' width='" << W - 2 * M << "' height='" << H - 2 * M
        << "' fill='none' stroke='#999'/>\n";
    svg << "<text x='" << x0 + M - 4 << "' y='" << M + 4 << "' text-anchor='end'>" << hi << "</text>\n";
    svg << "<text x='" << x0 + M - 4 << "' y='" << H - M << "' text-anchor='end'>" << lo << "</text>\n";
    svg << "<text x='" << x0 + W / 2 << "' y='" << H - M + 30 << "' text-anchor='middle'>epoch (1.." << n
        << ")</text>\n";
    for (std::size_t s = 0; s < series.size(); ++s) {
      svg << "<polyline fill='none' stroke-width='2' stroke='" << colors[s % 4] << "' points='";
      for (std::size_t i = 0; i < series[s].second.size(); ++i)
        if (std::isfinite(series[s].second[i])) svg << px(i) << ',' << py(series[s].second[i]) << ' ';
      svg << "'/>\n<text x='" << x0 + W - M - 4 << "' y='" << M + 16 + 14 * s << "' text-anchor='end' fill='"
          << colors[s % 4] << "'>" << series[s].first << "</text>\n";
    }
  }
  svg << "</svg>\n";
  std::ofstream out(path);
  if (!out) throw kiln::Error("history", "cannot write " + path + "; expected a writable path");
  out << svg.str();
}

}  // namespace examples
