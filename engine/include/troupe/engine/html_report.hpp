#pragma once
/// A run's report as one self-contained HTML file: tables and inline SVG line charts,
/// no scripts or stylesheets fetched from anywhere, so it opens offline and can be
/// mailed or attached to an issue as is.
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace troupe::engine {

/// One line of a chart; a point whose x or y is not finite is skipped and breaks the line.
struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  ///< (x, y)
};

struct Chart {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<Series> series;
};

struct HtmlReport {
  std::string title;
  std::vector<std::pair<std::string, std::string>> summary_rows;  ///< a 2-column table: name, value
  std::vector<std::string> table_header;                          ///< an optional multi-column table
  std::vector<std::vector<std::string>> table_rows;
  std::vector<Chart> charts;
};

/// Writes `report` to `path` atomically (temporary file, then rename). All text is
/// HTML-escaped. Throws troupe::Error naming the path when it cannot be written.
void write_html_report(const std::filesystem::path& path, const HtmlReport& report);

/// The SVG of one chart, as write_html_report embeds it.
std::string chart_svg(const Chart& chart);

/// A chart of the metrics `names` over step, from the `phase` rows of a MetricsLog
/// (read_metrics_log); nulls (non-finite values) become NaN points, gaps in the line.
/// Throws troupe::Error when a matching row's step or a named value is neither a
/// number nor null.
Chart chart_from_metrics(const std::vector<nlohmann::json>& rows, const std::string& phase,
                         const std::vector<std::string>& names, std::string title);

/// `text` with & < > " ' replaced by entities.
std::string html_escape(const std::string& text);

}  // namespace troupe::engine
