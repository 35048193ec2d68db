import Foundation

// MARK: - HTML

extension FleetReport {
    /// The report as one self-contained HTML page a person can open in a browser: no script, no external file;
    /// inline SVG charts of the latency distribution (percentile curves) and of completions over time, then tables
    /// of the summary, latency by stage and file kind, requests, error classes and status codes.
    /// Every text from outside (title, shard, file kinds, outcome classes) is escaped.
    public func html(title: String) -> String {
        var page = ""
        page += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        page += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        page += "<title>\(HTML.escape(title))</title>\n<style>\n\(HTML.style)</style>\n</head>\n<body>\n"
        page += "<h1>\(HTML.escape(title))</h1>\n"
        var meta = "Started \(Timestamp.iso8601(milliseconds: startedAtMs))"
        meta += shard.map { " · shard \(HTML.escape($0))" } ?? " · whole fleet"
        meta += " · vphone fleet report format \(version)"
        page += "<p class=\"meta\">\(meta)</p>\n"

        page += "<h2>Summary</h2>\n" + summaryTable()
        page += "<h2>Latency distribution</h2>\n" + percentileChart()
        page += "<p class=\"note\">Phone latency counts from each phone's intended start (open model), so a slow "
        page += "load generator cannot hide slowness. Percentiles are the top of their 0.1&#160;% HDR bucket.</p>\n"
        page += "<h2>Completions over time</h2>\n" + completionsChart()
        page += "<h2>Latency by stage (ms)</h2>\n" + latencyTable()
        page += "<h2>Latency by file kind (ms)</h2>\n" + fileLatencyTable()
        page += "<h2>Requests by file kind</h2>\n" + requestsTable()
        page += "<h2>Error classes</h2>\n" + countTable(errors.map { ($0.key, $0.value) }, heading: "Class")
        page += "<h2>HTTP status</h2>\n"
        page += countTable(httpStatus.map { (String($0.key), $0.value) }, heading: "Status")
        page += "</body>\n</html>\n"
        return page
    }

    // MARK: Tables

    private func summaryTable() -> String {
        let rows: [(String, String)] = [
            ("Phones", String(phones)),
            ("Provisioned", String(provisioned)),
            ("Fell back", String(fellBack)),
            ("Failed", String(failed)),
            ("Duration", Format.short(durationS) + " s"),
            ("Phones per second", Format.short(phonesPerS)),
            ("Requests", String(requests)),
            ("Requests per second", Format.short(requestsPerS)),
            ("Failed requests", String(errorCount)),
            ("Steady state after", steadyStateS.map { Format.short($0) + " s" } ?? "–"),
            ("Phone latency p99", Format.short(latencyMs.p99) + " ms"),
        ]
        var table = "<table class=\"summary\">\n"
        for (name, value) in rows {
            table += "<tr><th>\(name)</th><td>\(HTML.escape(value))</td></tr>\n"
        }
        return table + "</table>\n"
    }

    private static let latencyColumns =
        "<tr class=\"head\"><th></th><th>count</th><th>p50</th><th>p90</th><th>p99</th>"
        + "<th>p99.9</th><th>max</th><th>mean</th></tr>\n"

    private static func latencyRow(_ name: String, _ summary: LatencySummary) -> String {
        let values = [summary.p50, summary.p90, summary.p99, summary.p999, summary.max, summary.mean]
        let cells = values.map { "<td>\(Format.short($0))</td>" }.joined()
        return "<tr><th>\(HTML.escape(name))</th><td>\(summary.count)</td>\(cells)</tr>\n"
    }

    private func latencyTable() -> String {
        var table = "<table>\n" + Self.latencyColumns + Self.latencyRow("phone", latencyMs)
        for stage in Stage.allCases {
            table += Self.latencyRow(stage.rawValue, latency(stage))
        }
        return table + "</table>\n"
    }

    private func fileLatencyTable() -> String {
        guard !stageLatency.isEmpty else { return "<p>No requests.</p>\n" }
        var table = "<table>\n" + Self.latencyColumns
        for file in fileKinds {
            for stage in Stage.allCases {
                let summary = latency(stage, file: file)
                if summary.count > 0 {
                    table += Self.latencyRow("\(file) · \(stage.rawValue)", summary)
                }
            }
        }
        return table + "</table>\n"
    }

    private func requestsTable() -> String {
        guard !requestsByFile.isEmpty else { return "<p>No requests.</p>\n" }
        let outcomes = Set(requestsByFile.values.flatMap(\.keys)).sorted {
            ($0 == "ok" ? "" : $0) < ($1 == "ok" ? "" : $1)
        }
        var table = "<table>\n<tr class=\"head\"><th>File</th>"
        table += outcomes.map { "<th>\(HTML.escape($0))</th>" }.joined() + "</tr>\n"
        for file in fileKinds {
            let counts = requestsByFile[file] ?? [:]
            table += "<tr><th>\(HTML.escape(file))</th>"
            table += outcomes.map { "<td>\(counts[$0, default: 0])</td>" }.joined() + "</tr>\n"
        }
        return table + "</table>\n"
    }

    private func countTable(_ counts: [(String, Int)], heading: String) -> String {
        guard !counts.isEmpty else { return "<p>None.</p>\n" }
        var table = "<table>\n<tr class=\"head\"><th>\(heading)</th><th>count</th></tr>\n"
        for (name, count) in counts.sorted(by: { $0.0 < $1.0 }) {
            table += "<tr><th>\(HTML.escape(name))</th><td>\(count)</td></tr>\n"
        }
        return table + "</table>\n"
    }

    // MARK: Charts

    /// Latency against percentile on a "number of nines" axis (0 %, 90 %, 99 %, 99.9 % …): the tail is visible.
    private func percentileChart() -> String {
        // First byte is dashed: on small files it runs along the total.
        let series: [(name: String, color: String, dash: String, latency: LatencyHistogram)] = [
            ("phone (intended start to done)", "#1f77b4", "none", phoneLatency),
            ("request total", "#ff7f0e", "none", stageHistogram(.total, file: nil)),
            ("request first byte", "#2ca02c", "6 4", stageHistogram(.firstByte, file: nil)),
        ].filter { $0.latency.count > 0 }
        guard let most = series.map(\.latency.count).max() else { return "<p>No samples yet.</p>\n" }
        // As many nines as the samples can tell apart: 1,000 samples reach 99.9 %.
        let nines = min(max(Int(log10(Double(most)).rounded(.up)), 1), 5)
        let steps = 200
        let curves = series.map { entry in
            (0...steps).map { step -> (Double, Double) in
                let x = Double(nines) * Double(step) / Double(steps)
                let percentile = 100 * (1 - pow(10, -x))
                return (x, Double(entry.latency.valueUs(atPercentile: percentile)) / 1000)
            }
        }
        let top = curves.flatMap { $0.map(\.1) }.max() ?? 0
        let chart = Chart(yMax: Chart.niceCeiling(top))

        var svg = chart.open(label: "Latency by percentile, in milliseconds")
        svg += chart.yAxis(unit: "ms")
        for nine in 0...nines {
            let x = chart.x(Double(nine) / Double(nines))
            svg += chart.xTick(at: x, label: ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"][nine])
        }
        svg += chart.xLabel("percentile")
        for (index, entry) in series.enumerated() {
            let points = curves[index].map { point in
                Format.fixed(chart.x(point.0 / Double(nines)), 1) + "," + Format.fixed(chart.y(point.1), 1)
            }
            svg += "<polyline fill=\"none\" stroke=\"\(entry.color)\" stroke-width=\"2\" "
            svg += "stroke-dasharray=\"\(entry.dash)\" "
            svg += "points=\"\(points.joined(separator: " "))\"/>\n"
            let legendY = Chart.top + 14 + Double(index) * 16
            svg += "<rect x=\"\(Chart.left + 12)\" y=\"\(Format.fixed(legendY - 9, 1))\" width=\"12\" height=\"3\" "
            svg += "fill=\"\(entry.color)\"/>"
            svg +=
                "<text x=\"\(Chart.left + 30)\" y=\"\(Format.fixed(legendY, 1))\">\(HTML.escape(entry.name))</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// Phones finished per second (or per bin of seconds on long runs), with the steady-state moment marked.
    private func completionsChart() -> String {
        guard !completionsPerS.isEmpty else { return "<p>No phone finished yet.</p>\n" }
        let seconds = completionsPerS.count
        let bin = max(1, (seconds + 299) / 300)
        var bars: [Int] = []
        for start in stride(from: 0, to: seconds, by: bin) {
            bars.append(completionsPerS[start..<min(start + bin, seconds)].reduce(0, +))
        }
        let chart = Chart(yMax: Chart.niceCeiling(Double(bars.max() ?? 0)))
        let span = Double(bars.count * bin)

        var svg = chart.open(label: "Phones finished over time")
        svg += chart.yAxis(unit: bin == 1 ? "phones/s" : "phones/\(bin) s")
        let width = Chart.plotWidth / Double(bars.count)
        for (index, count) in bars.enumerated() where count > 0 {
            let y = chart.y(Double(count))
            svg += "<rect class=\"bar\" x=\"\(Format.fixed(Chart.left + Double(index) * width, 2))\" "
            svg += "y=\"\(Format.fixed(y, 2))\" width=\"\(Format.fixed(max(width - 0.5, 0.5), 2))\" "
            svg += "height=\"\(Format.fixed(Chart.top + Chart.plotHeight - y, 2))\"><title>"
            svg += "\(index * bin) s: \(count)</title></rect>\n"
        }
        let tick = max(1, Int(Chart.niceStep(span / 8)))
        for second in stride(from: 0, through: Int(span), by: tick) {
            svg += chart.xTick(at: chart.x(Double(second) / span), label: "\(second) s")
        }
        svg += chart.xLabel("seconds since the start")
        if let steadyStateS, steadyStateS <= span {
            let x = Format.fixed(chart.x(steadyStateS / span), 1)
            svg += "<line class=\"steady\" x1=\"\(x)\" y1=\"\(Chart.top)\" x2=\"\(x)\" "
            svg += "y2=\"\(Chart.top + Chart.plotHeight)\"/>"
            svg += "<text x=\"\(x)\" y=\"\(Chart.top - 4)\" text-anchor=\"end\">steady state "
            svg += "\(Format.short(steadyStateS)) s</text>\n"
        }
        return svg + "</svg>\n"
    }
}

/// Geometry and axes of one SVG chart (x as a 0...1 fraction of the plot, y in data units from 0 to `yMax`).
private struct Chart {
    static let width = 760.0
    static let height = 320.0
    static let left = 70.0
    static let right = 20.0
    static let top = 24.0
    static let bottom = 46.0
    static let plotWidth = width - left - right
    static let plotHeight = height - top - bottom

    var yMax: Double

    func x(_ fraction: Double) -> Double { Self.left + fraction * Self.plotWidth }
    func y(_ value: Double) -> Double { Self.top + Self.plotHeight * (1 - value / yMax) }

    func open(label: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" viewBox=\"0 0 \(Int(Self.width)) \(Int(Self.height))\" "
            + "width=\"\(Int(Self.width))\" height=\"\(Int(Self.height))\" aria-label=\"\(HTML.escape(label))\">\n"
            + "<title>\(HTML.escape(label))</title>\n"
    }

    func yAxis(unit: String) -> String {
        var svg = "<line class=\"axis\" x1=\"\(Self.left)\" y1=\"\(Self.top + Self.plotHeight)\" "
        svg += "x2=\"\(Self.left + Self.plotWidth)\" y2=\"\(Self.top + Self.plotHeight)\"/>\n"
        svg += "<line class=\"axis\" x1=\"\(Self.left)\" y1=\"\(Self.top)\" x2=\"\(Self.left)\" "
        svg += "y2=\"\(Self.top + Self.plotHeight)\"/>\n"
        let step = Self.niceStep(yMax / 5)
        for tick in stride(from: 0.0, through: yMax + step / 1000, by: step) {
            let y = Format.fixed(self.y(tick), 1)
            svg += "<line class=\"grid\" x1=\"\(Self.left)\" y1=\"\(y)\" x2=\"\(Self.left + Self.plotWidth)\" "
            svg += "y2=\"\(y)\"/><text x=\"\(Self.left - 6)\" y=\"\(y)\" text-anchor=\"end\" "
            svg += "dominant-baseline=\"middle\">\(Format.short(tick))</text>\n"
        }
        svg += "<text x=\"14\" y=\"\(Self.top + Self.plotHeight / 2)\" text-anchor=\"middle\" "
        svg += "transform=\"rotate(-90 14 \(Self.top + Self.plotHeight / 2))\">\(HTML.escape(unit))</text>\n"
        return svg
    }

    func xTick(at x: Double, label: String) -> String {
        let position = Format.fixed(x, 1)
        let base = Self.top + Self.plotHeight
        return "<line class=\"axis\" x1=\"\(position)\" y1=\"\(base)\" x2=\"\(position)\" y2=\"\(base + 5)\"/>"
            + "<text x=\"\(position)\" y=\"\(base + 18)\" text-anchor=\"middle\">\(HTML.escape(label))</text>\n"
    }

    func xLabel(_ text: String) -> String {
        "<text x=\"\(Self.left + Self.plotWidth / 2)\" y=\"\(Self.height - 6)\" text-anchor=\"middle\">"
            + "\(HTML.escape(text))</text>\n"
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let magnitude = pow(10, floor(log10(raw)))
        let residual = raw / magnitude
        let factor: Double = residual <= 1 ? 1 : residual <= 2 ? 2 : residual <= 5 ? 5 : 10
        return factor * magnitude
    }

    /// The smallest multiple of a nice step that holds `value` (1 when there is nothing to show).
    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0, value.isFinite else { return 1 }
        let step = niceStep(value / 5)
        return (value / step).rounded(.up) * step
    }
}

enum HTML {
    /// Text and attribute escaping: `&`, `<`, `>`, `"` and `'`.
    static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    static let style = """
        body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 800px;
               color: #222; padding: 0 1em; }
        h1 { font-size: 1.6em; margin-bottom: 0.2em; }
        h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
        .meta, .note { color: #666; }
        table { border-collapse: collapse; margin: 0.5em 0; }
        th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; }
        th:first-child { text-align: left; font-weight: normal; }
        tr.head th { font-weight: 600; }
        svg { max-width: 100%; height: auto; font-size: 11px; fill: #444; }
        .axis { stroke: #888; }
        .grid { stroke: #eee; }
        .bar { fill: #1f77b4; }
        .steady { stroke: #d62728; stroke-dasharray: 4 3; }

        """
}
