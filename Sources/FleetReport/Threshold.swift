/// A pass/fail condition on a report, for `--fail-if`: the run fails when the condition holds.
///
/// Forms (whitespace anywhere is ignored):
/// - latency: `p99>500ms`, `p50>=20ms`, `p99.9>1s`, `max>2s`, `mean>100ms` — phone latency by default;
///   `p99.total>300ms` (a stage over all files), `p99.standard>300ms` (a file's total),
///   `p99.standard.first_byte>300ms` (a file's stage). Units: `us` (or `µs`), `ms`, `s`.
/// - counts: `failed>0`, `fell_back>10`, `provisioned<1000`, `phones<1000`, `requests<4000`, `errors>0`,
///   `errors.timeout>0`, `http_status.503>0`; or a share: `failed>1%` (of phones), `errors>0.5%` (of requests),
///   `http_status.404>10%` (of responses).
/// - rates: `phones_per_s<100`, `provisioned_per_s<100`, `requests_per_s<1000` (an optional `/s` suffix).
/// - times: `steady_state_s>60`, `duration_s>120` (seconds, or with a unit: `steady_state>90s`).
///
/// Operators: `>`, `>=`, `<`, `<=`.
///
/// ```swift
/// let threshold = try Threshold.parse("p99 > 500ms")
/// if let violation = threshold.violation(in: report) {
///     print(violation)   // p99 612 ms > 500 ms
/// }
/// ```
public struct Threshold: Sendable, Equatable, CustomStringConvertible {
    enum Comparison: String, Sendable {
        case greaterOrEqual = ">="
        case lessOrEqual = "<="
        case greater = ">"
        case less = "<"

        func holds(_ value: Double, _ limit: Double) -> Bool {
            switch self {
            case .greaterOrEqual: value >= limit
            case .lessOrEqual: value <= limit
            case .greater: value > limit
            case .less: value < limit
            }
        }
    }

    enum Statistic: Equatable, Sendable {
        case percentile(Double)
        case max
        case mean
    }

    enum Subject: Equatable, Sendable {
        case phone
        case stage(Stage, file: String?)
    }

    enum Counted: Equatable, Sendable {
        case phones, provisioned, fellBack, failed, requests, errors
        case errorClass(String)
        case httpStatus(Int)
    }

    enum Quantity: Equatable, Sendable {
        /// The limit in µs.
        case latency(Statistic, Subject)
        /// The limit as a count, or as a percentage of the whole when `percent`.
        case count(Counted, percent: Bool)
        /// The limit per second.
        case rate(Rate)
        /// The limit in seconds.
        case seconds(Span)
    }

    enum Rate: String, Sendable {
        case phonesPerS = "phones_per_s"
        case provisionedPerS = "provisioned_per_s"
        case requestsPerS = "requests_per_s"
    }

    enum Span: String, Sendable {
        case steadyState = "steady_state_s"
        case duration = "duration_s"
    }

    let quantity: Quantity
    let comparison: Comparison
    /// In the quantity's base unit: µs, a count, a percentage, per second, seconds.
    let limit: Double
    /// The metric as written canonically (`p99.standard.total`).
    let name: String
    /// The limit as given (`500`) and its unit (`ms`, `%`, or empty), for messages.
    let limitText: String
    let unit: String
    /// Base units per unit of `unit` (µs per ms, seconds per ms …), to show a value as the limit was written.
    let unitScale: Double

    /// The threshold written canonically: `p99>500ms`.
    public var description: String { name + comparison.rawValue + limitText + unit }

    /// File kinds a latency threshold may name.
    static let fileKinds = FleetStats.knownFileKinds

    // MARK: - Parsing

    /// Parses a `--fail-if` text.
    ///
    /// - Throws: `FleetReportError` (`.invalidThreshold`) saying what is expected, for anything else.
    public static func parse(_ text: String) throws -> Threshold {
        let compact = String(text.filter { !$0.isWhitespace })
        func invalid(_ why: String) -> FleetReportError {
            FleetReportError(.invalidThreshold, "'\(compact)': \(why)")
        }
        guard !compact.isEmpty else {
            throw FleetReportError(.invalidThreshold, "empty threshold: write METRIC>VALUE, e.g. 'p99>500ms'")
        }
        guard let operatorStart = compact.firstIndex(where: { $0 == "<" || $0 == ">" }) else {
            throw invalid(
                compact.contains("=")
                    ? "'=' is not a comparison here: use >, >=, < or <= (e.g. 'failed>0')"
                    : "no comparison: write METRIC>VALUE, METRIC>=VALUE, METRIC<VALUE or METRIC<=VALUE, "
                        + "e.g. 'p99>500ms'"
            )
        }
        var valueStart = compact.index(after: operatorStart)
        var comparison: Comparison = compact[operatorStart] == ">" ? .greater : .less
        if valueStart < compact.endIndex, compact[valueStart] == "=" {
            comparison = comparison == .greater ? .greaterOrEqual : .lessOrEqual
            valueStart = compact.index(after: valueStart)
        }
        let metric = compact[..<operatorStart].lowercased()
        let value = String(compact[valueStart...])
        guard !metric.isEmpty else { throw invalid("no metric before '\(comparison.rawValue)', e.g. 'p99>500ms'") }
        guard !value.isEmpty else {
            throw invalid("no value after '\(comparison.rawValue)', e.g. '\(metric)\(comparison.rawValue)1'")
        }
        guard !value.contains(where: { "<>=".contains($0) }) else {
            throw invalid("one comparison only: >, >=, < or <=")
        }
        let (quantity, name) = try parseMetric(metric, invalid)
        let numberText = String(value.prefix { $0.isNumber || $0 == "." })
        let unit = String(value.dropFirst(numberText.count))
        guard !numberText.isEmpty, let number = Double(numberText), number.isFinite else {
            throw invalid("'\(value)' is not a number with a unit; expected e.g. '500ms', '0', '1%' or '100'")
        }
        let (finalQuantity, unitScale) = try scale(quantity, name: name, unit: unit, invalid)
        return Threshold(
            quantity: finalQuantity,
            comparison: comparison,
            limit: number * unitScale,
            name: name,
            limitText: numberText,
            unit: unit,
            unitScale: unitScale
        )
    }

    private static let metricsHelp =
        "expected pNN (p50, p99, p99.9), max or mean (optionally .STAGE, .FILE or .FILE.STAGE), phones, "
        + "provisioned, fell_back, failed, requests, errors, errors.CLASS, http_status.CODE, phones_per_s, "
        + "provisioned_per_s, requests_per_s, steady_state_s or duration_s"

    private static func parseMetric(
        _ metric: String,
        _ invalid: (String) -> FleetReportError
    ) throws -> (Quantity, String) {
        var tokens = metric.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let head = tokens.removeFirst()
        let statistic: Statistic
        let statisticName: String
        switch head {
        case "max", "mean":
            statistic = head == "max" ? .max : .mean
            statisticName = head
        case let percentile where percentile.hasPrefix("p") && percentile.dropFirst().allSatisfy(\.isNumber):
            var digits = String(percentile.dropFirst())
            if let fraction = tokens.first, !fraction.isEmpty, fraction.allSatisfy(\.isNumber) {
                digits += "." + fraction
                tokens.removeFirst()
            }
            guard let level = Double(digits), (0...100).contains(level) else {
                throw invalid(
                    "'p\(digits)' is not a percentile from p0 to p100 (write p99.9 for the 99.9th percentile)"
                )
            }
            statistic = .percentile(level)
            statisticName = "p" + digits
        default:
            return try parseOtherMetric(head, tokens, invalid)
        }
        return (.latency(statistic, try subject(tokens, invalid)), ([statisticName] + tokens).joined(separator: "."))
    }

    private static func subject(_ selectors: [String], _ invalid: (String) -> FleetReportError) throws -> Subject {
        let stages = Stage.allCases.map(\.rawValue).joined(separator: ", ")
        let files = fileKinds.joined(separator: ", ")
        func unknown(_ name: String) -> FleetReportError {
            invalid("'\(name)' is not a stage (\(stages)), a file kind (\(files)) or 'phone'")
        }
        switch selectors.count {
        case 0:
            return .phone
        case 1:
            let name = selectors[0]
            if name == "phone" { return .phone }
            if let stage = Stage(rawValue: name) { return .stage(stage, file: nil) }
            if fileKinds.contains(name) { return .stage(.total, file: name) }
            throw unknown(name)
        case 2:
            guard fileKinds.contains(selectors[0]) else {
                throw invalid("'\(selectors[0])' is not a file kind (\(files)); write pNN.FILE.STAGE")
            }
            guard let stage = Stage(rawValue: selectors[1]) else {
                throw invalid("'\(selectors[1])' is not a stage (\(stages)); write pNN.FILE.STAGE")
            }
            return .stage(stage, file: selectors[0])
        default:
            throw invalid("too many parts: write pNN, pNN.STAGE, pNN.FILE or pNN.FILE.STAGE")
        }
    }

    private static func parseOtherMetric(
        _ head: String,
        _ rest: [String],
        _ invalid: (String) -> FleetReportError
    ) throws -> (Quantity, String) {
        let plain: [String: Quantity] = [
            "phones": .count(.phones, percent: false),
            "provisioned": .count(.provisioned, percent: false),
            "fell_back": .count(.fellBack, percent: false),
            "failed": .count(.failed, percent: false),
            "requests": .count(.requests, percent: false),
            "phones_per_s": .rate(.phonesPerS),
            "provisioned_per_s": .rate(.provisionedPerS),
            "requests_per_s": .rate(.requestsPerS),
            "steady_state_s": .seconds(.steadyState),
            "steady_state": .seconds(.steadyState),
            "duration_s": .seconds(.duration),
            "duration": .seconds(.duration),
        ]
        if let quantity = plain[head] {
            guard rest.isEmpty else { throw invalid("'\(head)' takes no '.\(rest.joined(separator: "."))'") }
            let name =
                switch quantity {
                case let .seconds(span): span.rawValue
                default: head
                }
            return (quantity, name)
        }
        switch head {
        case "errors":
            if rest.isEmpty { return (.count(.errors, percent: false), head) }
            guard rest.count == 1, let kind = rest.first, !kind.isEmpty,
                kind.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" })
            else {
                throw invalid("write 'errors' or 'errors.CLASS' with one class, e.g. 'errors.timeout>0'")
            }
            return (.count(.errorClass(kind), percent: false), "errors." + kind)
        case "http_status", "status":
            guard rest.count == 1, let code = Int(rest[0]), (0...999).contains(code) else {
                throw invalid("write 'http_status.CODE' with a status code, e.g. 'http_status.503>0'")
            }
            return (.count(.httpStatus(code), percent: false), "http_status.\(code)")
        default:
            throw invalid("unknown metric '\(head)'; \(metricsHelp)")
        }
    }

    /// Base units per unit written, checking that the unit suits the quantity (a `%` turns a count into a share).
    private static func scale(
        _ quantity: Quantity,
        name: String,
        unit: String,
        _ invalid: (String) -> FleetReportError
    ) throws -> (Quantity, Double) {
        let durations: [String: Double] = ["us": 1, "µs": 1, "ms": 1000, "s": 1_000_000]
        switch quantity {
        case .latency:
            guard !unit.isEmpty else {
                throw invalid("a latency needs a unit (us, ms or s), e.g. '\(name)>500ms'")
            }
            guard let factor = durations[unit] else {
                throw invalid("unknown unit '\(unit)' for a latency; expected us, ms or s")
            }
            return (quantity, factor)
        case let .count(counted, _):
            switch unit {
            case "":
                return (quantity, 1)
            case "%":
                guard counted != .phones, counted != .requests else {
                    throw invalid(
                        "'\(name)' is the whole; a share (%) applies to provisioned, fell_back, "
                            + "failed, errors, errors.CLASS and http_status.CODE"
                    )
                }
                return (.count(counted, percent: true), 1)
            default:
                throw invalid("\(name) is a count: write a plain number ('\(name)>0') or a share ('\(name)>1%')")
            }
        case .rate:
            guard unit.isEmpty || unit == "/s" else {
                throw invalid("\(name) is a rate per second: write a plain number, e.g. '\(name)<100'")
            }
            return (quantity, 1)
        case .seconds:
            if unit.isEmpty { return (quantity, 1) }
            guard let factor = durations[unit] else {
                throw invalid("unknown unit '\(unit)' for a time; expected seconds (no unit), us, ms or s")
            }
            return (quantity, factor / 1_000_000)
        }
    }

    // MARK: - Evaluation

    /// Whether `report` crosses the threshold.
    ///
    /// - Returns: nil when the condition does not hold (the run passes), else a sentence for the person reading
    ///   CI output: `p99 612 ms > 500 ms`, `failed 3 > 0`, `failed 3.2% > 1% (32 of 1000 phones)`.
    ///   A latency threshold on a series without samples (`p99.tls` on plain HTTP) holds no violation.
    public func violation(in report: FleetReport) -> String? {
        let op = comparison.rawValue
        switch quantity {
        case let .latency(statistic, subject):
            let latency =
                switch subject {
                case .phone: report.phoneLatency
                case let .stage(stage, file): report.stageHistogram(stage, file: file)
                }
            guard latency.count > 0 else { return nil }
            let valueUs: Double =
                switch statistic {
                case let .percentile(level): Double(latency.valueUs(atPercentile: level))
                case .max: Double(latency.maxUs)
                case .mean: Double(latency.sumUs) / Double(latency.count)
                }
            guard comparison.holds(valueUs, limit) else { return nil }
            return "\(name) \(Format.short(valueUs / unitScale)) \(unit) \(op) \(limitText) \(unit)"
        case let .count(counted, percent):
            let (count, whole, of) = Self.count(counted, in: report)
            guard percent else {
                return comparison.holds(Double(count), limit) ? "\(name) \(count) \(op) \(limitText)" : nil
            }
            let share = whole > 0 ? 100 * Double(count) / Double(whole) : 0
            guard comparison.holds(share, limit) else { return nil }
            return "\(name) \(Format.short(share))% \(op) \(limitText)% (\(count) of \(whole) \(of))"
        case let .rate(rate):
            let value =
                switch rate {
                case .phonesPerS: report.phonesPerS
                case .provisionedPerS: report.provisionedPerS
                case .requestsPerS: report.requestsPerS
                }
            return comparison.holds(value, limit) ? "\(name) \(Format.short(value)) \(op) \(limitText)" : nil
        case let .seconds(span):
            let value: Double
            switch span {
            case .duration:
                value = report.durationS
            case .steadyState:
                guard let steady = report.steadyStateS else {
                    return "\(name): no phone finished, so the fleet never reached steady state"
                }
                value = steady
            }
            guard comparison.holds(value, limit) else { return nil }
            let shownUnit = unit.isEmpty ? "s" : unit
            return "\(name) \(Format.short(value / unitScale)) \(shownUnit) \(op) \(limitText) \(shownUnit)"
        }
    }

    /// A count, the whole it is a share of, and what that whole counts.
    private static func count(_ counted: Counted, in report: FleetReport) -> (Int, Int, String) {
        switch counted {
        case .phones: (report.phones, report.phones, "phones")
        case .provisioned: (report.provisioned, report.phones, "phones")
        case .fellBack: (report.fellBack, report.phones, "phones")
        case .failed: (report.failed, report.phones, "phones")
        case .requests: (report.requests, report.requests, "requests")
        case .errors: (report.errorCount, report.requests, "requests")
        case let .errorClass(kind): (report.errors[kind, default: 0], report.requests, "requests")
        case let .httpStatus(code):
            (report.httpStatus[code, default: 0], report.httpStatus.values.reduce(0, +), "responses")
        }
    }
}
