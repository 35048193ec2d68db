/// Why a threshold could not be parsed, a report could not be read, or reports could not be merged.
///
/// `message` is meant for the person running the fleet as it stands: it says what is wrong and what is expected.
/// Match on `kind` in code; the set of kinds can grow.
///
/// ```swift
/// do {
///     _ = try Threshold.parse("p99>500")
/// } catch {
///     print(error)  // 'p99>500': a latency needs a unit (us, ms or s), e.g. 'p99>500ms'
/// }
/// ```
public struct FleetReportError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, for code to branch on.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidThreshold, invalidReport, incompatibleReports, nothingToMerge
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A `--fail-if` text that is not `METRIC OP VALUE` with a known metric, operator and unit.
        public static let invalidThreshold = Kind(.invalidThreshold)
        /// A JSON report that is not a vphone fleet report, is of another format version, or is damaged.
        public static let invalidReport = Kind(.invalidReport)
        /// Reports that cannot be merged: other format versions, the same shard twice, shards of different splits.
        public static let incompatibleReports = Kind(.incompatibleReports)
        /// `merge` was given no report.
        public static let nothingToMerge = Kind(.nothingToMerge)

        /// A stable machine name: "invalidThreshold", "invalidReport", "incompatibleReports" or "nothingToMerge".
        public var name: String { base.rawValue }

        public var description: String { name }
    }

    public var kind: Kind
    /// What is wrong and what is expected, in plain words.
    public var message: String

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
