// MARK: - Prometheus

extension FleetReport {
    /// The report in the Prometheus text exposition format (0.0.4), for `--metrics-port`.
    ///
    /// Cardinality is bounded: labels are outcome classes, file kinds, stages and status codes, never a MAC.
    /// Durations are summaries (quantiles 0.5, 0.9, 0.99, 0.999, with exact `_sum` and `_count`):
    /// `vphone_fleet_phone_latency_seconds`, `vphone_fleet_request_duration_seconds{stage}` over all files and
    /// `vphone_fleet_file_request_duration_seconds{file,stage}` per file kind.
    public func prometheus() -> String {
        var text = PrometheusText()

        text.family(
            "vphone_fleet_phones_total",
            type: "counter",
            help: "Phones that finished boot-time provisioning, by outcome."
        )
        for outcome in Set(["provisioned", "fell_back", "failed"]).union(phoneOutcomes.keys).sorted() {
            text.sample("vphone_fleet_phones_total", [("outcome", outcome)], phoneOutcomes[outcome, default: 0])
        }

        text.family("vphone_fleet_requests_total", type: "counter", help: "Transfers, by file kind and outcome.")
        for file in fileKinds {
            let outcomes = requestsByFile[file] ?? [:]
            for outcome in outcomes.keys.sorted() {
                text.sample(
                    "vphone_fleet_requests_total",
                    [("file", file), ("outcome", outcome)],
                    outcomes[outcome, default: 0]
                )
            }
        }

        text.family(
            "vphone_fleet_request_errors_total",
            type: "counter",
            help: "Failed transfers, by failure class."
        )
        let errors = errors
        for kind in errors.keys.sorted() {
            text.sample("vphone_fleet_request_errors_total", [("class", kind)], errors[kind, default: 0])
        }

        text.family(
            "vphone_fleet_http_responses_total",
            type: "counter",
            help: "Responses, by status code (TFTP reports 0)."
        )
        for code in httpStatus.keys.sorted() {
            text.sample("vphone_fleet_http_responses_total", [("code", String(code))], httpStatus[code, default: 0])
        }

        text.family(
            "vphone_fleet_phone_latency_seconds",
            type: "summary",
            help: "Boot-time provisioning latency of a phone, from its intended start (open model)."
        )
        text.summary("vphone_fleet_phone_latency_seconds", [], phoneLatency)

        text.family(
            "vphone_fleet_request_duration_seconds",
            type: "summary",
            help: "Duration of one stage of a transfer (dns, connect, tls, first_byte, total), all file kinds."
        )
        for stage in Stage.allCases {
            text.summary(
                "vphone_fleet_request_duration_seconds",
                [("stage", stage.rawValue)],
                stageHistogram(stage, file: nil)
            )
        }

        text.family(
            "vphone_fleet_file_request_duration_seconds",
            type: "summary",
            help: "Duration of one stage of a transfer, by file kind."
        )
        for file in fileKinds where stageLatency[file] != nil {
            for stage in Stage.allCases {
                text.summary(
                    "vphone_fleet_file_request_duration_seconds",
                    [("file", file), ("stage", stage.rawValue)],
                    stageHistogram(stage, file: file)
                )
            }
        }

        text.gauge("vphone_fleet_run_duration_seconds", help: "Wall time of the run so far.", value: durationS)
        text.gauge("vphone_fleet_phones_per_second", help: "Phones finished per second of the run.", value: phonesPerS)
        text.gauge("vphone_fleet_requests_per_second", help: "Transfers per second of the run.", value: requestsPerS)
        if let share = inFlightLimitShare {
            text.family(
                "vphone_fleet_in_flight_limit_wait_seconds_total",
                type: "counter",
                help: "Seconds the loops spent, summed over them, with every place --max-in-flight gives taken, "
                    + "transfers waiting and nothing to do but wait for the server."
            )
            text.sample("vphone_fleet_in_flight_limit_wait_seconds_total", [], atInFlightLimitS)
            text.gauge(
                "vphone_fleet_in_flight_limit_share",
                help: "Share of the run the loops waited at the in-flight limit (a quarter or more: the limit, not "
                    + "the server, may have set the pace).",
                value: share
            )
        }
        if let steadyStateS {
            text.gauge(
                "vphone_fleet_steady_state_seconds",
                help: "When the last phone finished its boot-time provisioning, since the start.",
                value: steadyStateS
            )
        }
        return text.output
    }
}

/// Builds exposition text: `# HELP` and `# TYPE` once per family, then its samples.
private struct PrometheusText {
    var output = ""

    static let quantiles: [(label: String, percentile: Double)] = [
        ("0.5", 50), ("0.9", 90), ("0.99", 99), ("0.999", 99.9),
    ]

    mutating func family(_ name: String, type: String, help: String) {
        output += "# HELP \(name) \(help.replacingBackslashAndNewline())\n# TYPE \(name) \(type)\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Int) {
        output += name + Self.labels(labels) + " " + String(value) + "\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
        output += name + Self.labels(labels) + " " + Self.number(value) + "\n"
    }

    mutating func summary(_ name: String, _ labels: [(String, String)], _ latency: LatencyHistogram) {
        for quantile in Self.quantiles {
            let seconds = Double(latency.valueUs(atPercentile: quantile.percentile)) / 1_000_000
            sample(name, labels + [("quantile", quantile.label)], seconds)
        }
        sample(name + "_sum", labels, Double(latency.sumUs) / 1_000_000)
        sample(name + "_count", labels, latency.count)
    }

    mutating func gauge(_ name: String, help: String, value: Double) {
        family(name, type: "gauge", help: help)
        sample(name, [], value)
    }

    /// `{a="x",b="y"}` with `\`, `"` and line feeds escaped as the format requires.
    private static func labels(_ labels: [(String, String)]) -> String {
        guard !labels.isEmpty else { return "" }
        let pairs = labels.map { name, value in
            var escaped = ""
            for character in value {
                switch character {
                case "\\": escaped += "\\\\"
                case "\"": escaped += "\\\""
                case "\n": escaped += "\\n"
                default: escaped.append(character)
                }
            }
            return "\(name)=\"\(escaped)\""
        }
        return "{" + pairs.joined(separator: ",") + "}"
    }

    private static func number(_ value: Double) -> String {
        guard value.isFinite else { return value.isNaN ? "NaN" : value > 0 ? "+Inf" : "-Inf" }
        return value == value.rounded() && value.magnitude < 1e15 ? String(Int64(value)) : String(value)
    }
}

extension String {
    /// HELP text escaping: backslash and line feed.
    fileprivate func replacingBackslashAndNewline() -> String {
        var escaped = ""
        for character in self {
            switch character {
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
