// Small static SVG charts for the run report: line charts, bar charts,
// histograms and range charts, each a self-contained <svg class="chart">
// element with its axes, ticks, labels and a legend. No script needed to draw.
#ifndef QFORGE_TRAINER_SVG_CHART_H_
#define QFORGE_TRAINER_SVG_CHART_H_

#include <string>
#include <utility>
#include <vector>

namespace qforge::svg {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y)
};

// Lines through each series' points, with markers.
std::string LineChart(const std::string& title, const std::string& x_label,
                      const std::string& y_label, const std::vector<Series>& series);

// One bar per label; bars below `warn_below` are drawn in the warning colour.
std::string BarChart(const std::string& title, const std::vector<std::string>& labels,
                     const std::vector<double>& values, const std::string& y_label,
                     double warn_below);

// Counts of equal-width bins over [lo, hi] (log scale), with vertical lines at
// `range_lo` and `range_hi`.
std::string Histogram(const std::string& title, const std::vector<double>& counts, double lo,
                      double hi, double range_lo, double range_hi, const std::string& range_label);

// A vertical bar per channel from its min to its max, and dashed lines at the
// overall min and max.
std::string RangeChart(const std::string& title, const std::vector<double>& mins,
                       const std::vector<double>& maxs);

// Escapes &, <, > and quotes for HTML text and attributes.
std::string Escape(const std::string& text);

}  // namespace qforge::svg

#endif  // QFORGE_TRAINER_SVG_CHART_H_
