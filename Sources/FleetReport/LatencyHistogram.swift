import Foundation
import Histogram

/// One latency series: an HDR histogram in microseconds (1 µs to 10 min at 3 significant digits, growing beyond
/// rather than dropping a slower value) and the exact sum, so means and Prometheus `_sum` are exact and merge exactly.
struct LatencyHistogram: Sendable, Equatable {
    /// The range the histogram is sized for up front; a slower value grows it (one allocation) instead of being lost.
    static let highestTrackableUs: UInt64 = 600_000_000

    private(set) var histogram: Histogram<UInt64>
    private(set) var sumUs: UInt64 = 0

    init() {
        histogram = Histogram(
            lowestDiscernibleValue: 1,
            highestTrackableValue: Self.highestTrackableUs,
            numberOfSignificantValueDigits: .three
        )
        histogram.autoResize = true
    }

    var count: Int { Int(histogram.totalCount) }
    var totalCount: UInt64 { histogram.totalCount }

    /// Whether `add(other)` keeps the count an `Int` and the sum exact (reports' counts are checked before a merge).
    func canAdd(_ other: LatencyHistogram) -> Bool {
        let (count, countOverflow) = histogram.totalCount.addingReportingOverflow(other.histogram.totalCount)
        let (_, sumOverflow) = sumUs.addingReportingOverflow(other.sumUs)
        return !countOverflow && !sumOverflow && count <= UInt64(Int.max)
    }

    @inline(__always)
    mutating func record(_ microseconds: Int64) {
        let value = UInt64(clamping: microseconds)
        histogram.record(value)
        sumUs &+= value
    }

    /// Exact: bucket counts are summed (`Histogram.add`), not percentiles averaged.
    mutating func add(_ other: LatencyHistogram) {
        histogram.add(other.histogram)
        sumUs &+= other.sumUs
    }

    /// The value at `percentile` (0...100) in µs: the highest value equivalent to the bucket, so never understated,
    /// and never above the largest value actually recorded.
    func valueUs(atPercentile percentile: Double) -> UInt64 {
        histogram.totalCount == 0 ? 0 : histogram.valueAtPercentile(percentile)
    }

    /// The largest value recorded, exactly.
    var maxUs: UInt64 { histogram.totalCount == 0 ? 0 : histogram.maxRecorded }

    var summary: LatencySummary {
        LatencySummary(
            count: count,
            p50: Format.milliseconds(valueUs(atPercentile: 50)),
            p90: Format.milliseconds(valueUs(atPercentile: 90)),
            p99: Format.milliseconds(valueUs(atPercentile: 99)),
            p999: Format.milliseconds(valueUs(atPercentile: 99.9)),
            max: Format.milliseconds(maxUs),
            mean: count == 0 ? 0 : Format.thousandths(Double(sumUs) / Double(count) / 1000)
        )
    }
}

/// Percentiles of one latency series, in milliseconds (exact to the microsecond; HDR percentiles are the top of
/// their 0.1 % bucket, so they never understate).
public struct LatencySummary: Codable, Sendable, Equatable {
    public var count: Int
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var p999: Double
    public var max: Double
    public var mean: Double

    public init(count: Int, p50: Double, p90: Double, p99: Double, p999: Double, max: Double, mean: Double) {
        self.count = count
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.p999 = p999
        self.max = max
        self.mean = mean
    }

    enum CodingKeys: String, CodingKey {
        case count, p50, p90, p99, max, mean
        case p999 = "p99_9"
    }
}

// MARK: - Snapshot: the histogram in a report

/// How a histogram travels in a JSON report: exact enough to rebuild a histogram equal to the original (same
/// bucket counts, same recorded minimum and maximum, so the same percentiles), small enough to read (the non-zero
/// buckets as base64 of LEB128 varints: value delta, count).
struct HistogramSnapshot: Codable, Equatable {
    var count: UInt64
    var sumUs: UInt64
    var minUs: UInt64
    var maxUs: UInt64
    var lowestUs: UInt64
    var digits: Int
    var buckets: String

    enum CodingKeys: String, CodingKey {
        case count, buckets, digits
        case sumUs = "sum_us"
        case minUs = "min_us"
        case maxUs = "max_us"
        case lowestUs = "lowest_us"
    }

    /// Values above this (about 13 days in µs) are refused on reading: no real transfer takes that long, and a
    /// damaged file must not make the histogram allocate without bound.
    static let largestReadableUs: UInt64 = 1 << 40

    init(_ latency: LatencyHistogram) {
        let histogram = latency.histogram
        count = histogram.totalCount
        sumUs = latency.sumUs
        maxUs = histogram.maxRecorded
        // `min` is the exact smallest non-zero value unless zeros were recorded; then only its bucket matters.
        let zeros = UInt64(histogram.countForValue(0))
        minUs = zeros == count ? 0 : histogram.min != 0 ? histogram.min : histogram.minNonZero
        lowestUs = histogram.lowestDiscernibleValue
        digits = Int(histogram.numberOfSignificantValueDigits.rawValue)
        var bytes: [UInt8] = []
        var previous: UInt64 = 0
        for bucket in histogram.recordedValues() {
            Varint.append(bucket.value - previous, to: &bytes)
            Varint.append(UInt64(bucket.count), to: &bytes)
            previous = bucket.value
        }
        buckets = Data(bytes).base64EncodedString()
    }

    /// Rebuilds the histogram. Each bucket's count is recorded at a value inside that bucket; the buckets holding
    /// the minimum and maximum are recorded at those exact values, so the rebuilt histogram's `min`, `maxRecorded`
    /// and percentiles are the original's.
    func latencyHistogram(path: String) throws -> LatencyHistogram {
        func damaged(_ why: String) -> FleetReportError {
            FleetReportError(.invalidReport, "histogram \(path) is damaged: \(why); write the report again")
        }
        guard lowestUs == 1, digits == 3 else {
            throw FleetReportError(
                .invalidReport,
                "histogram \(path) has \(digits) significant digits from \(lowestUs) µs; this vphone records 3 "
                    + "significant digits from 1 µs: merge reports written by the same vphone version"
            )
        }
        guard maxUs <= Self.largestReadableUs else { throw damaged("a maximum of \(maxUs) µs") }
        guard count <= UInt64(Int.max) else { throw damaged("a count of \(count)") }
        guard let data = Data(base64Encoded: buckets) else { throw damaged("'buckets' is not base64") }
        var latency = LatencyHistogram()
        var histogram = latency.histogram
        let bytes = [UInt8](data)
        var offset = 0
        var value: UInt64 = 0
        var total: UInt64 = 0
        while offset < bytes.count {
            guard let delta = Varint.read(bytes, &offset), let bucketCount = Varint.read(bytes, &offset) else {
                throw damaged("'buckets' ends inside a number")
            }
            let (next, overflow) = value.addingReportingOverflow(delta)
            guard !overflow, next <= Self.largestReadableUs, bucketCount > 0,
                next <= maxUs || histogram.valuesAreEquivalent(next, maxUs)
            else {
                throw damaged("a bucket out of range")
            }
            value = next
            let (sum, countOverflow) = total.addingReportingOverflow(bucketCount)
            guard !countOverflow, sum <= count else {
                throw damaged("bucket counts add up to more than \(count)")
            }
            total = sum
            let holdsMin = minUs != 0 && value != 0 && histogram.valuesAreEquivalent(value, minUs)
            let holdsMax = value != 0 && histogram.valuesAreEquivalent(value, maxUs)
            switch (holdsMin, holdsMax) {
            case (true, true) where bucketCount > 1:
                histogram.record(minUs, count: bucketCount - 1)
                histogram.record(maxUs)
            case (_, true):
                histogram.record(maxUs, count: bucketCount)
            case (true, false):
                histogram.record(minUs, count: bucketCount)
            case (false, false):
                histogram.record(value, count: bucketCount)
            }
        }
        guard total == count else { throw damaged("bucket counts add up to \(total), not \(count)") }
        latency = LatencyHistogram(histogram: histogram, sumUs: sumUs)
        return latency
    }
}

extension LatencyHistogram {
    fileprivate init(histogram: Histogram<UInt64>, sumUs: UInt64) {
        self.histogram = histogram
        self.sumUs = sumUs
    }
}

/// Unsigned LEB128.
private enum Varint {
    static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    static func read(_ bytes: [UInt8], _ offset: inout Int) -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while offset < bytes.count, shift < 64 {
            let byte = bytes[offset]
            offset += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        return nil
    }
}
