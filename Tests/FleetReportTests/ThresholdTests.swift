import FleetReport
import Foundation
import Testing

/// 1000 phones with latencies 1 … 1000 ms (3 failed, 10 fell back), 4000 requests (40 timeouts, 8 not found).
private let report: FleetReport = {
    let stats = FleetStats(startedAt: runStart)
    for index in 1...1000 {
        let outcome = index <= 3 ? "failed" : index <= 13 ? "fell_back" : "provisioned"
        stats.recordPhone(
            mac: mac(index),
            outcome: outcome,
            intendedStartS: 0,
            completedAtS: Double(index) / 100,
            latencyUs: Int64(index) * 1000,
            files: [:],
            error: nil
        )
        for (number, file) in fileKinds.enumerated() {
            let request = index * 4 + number
            let outcome = request % 100 == 0 ? "timeout" : request % 500 == 1 ? "not_found" : "ok"
            stats.recordRequest(
                file: file,
                outcome: outcome,
                httpStatus: outcome == "timeout" ? nil : outcome == "ok" ? 200 : 404,
                dnsUs: 100,
                connectUs: 300,
                tlsUs: 0,
                firstByteUs: 300 + Int64(index) * 100,
                totalUs: 400 + Int64(index) * 200
            )
        }
    }
    return stats.report(durationS: 10)
}()

@Suite("Threshold: --fail-if")
struct ThresholdTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var text: String
        var canonical: String
        /// The violation sentence, or nil when the report passes.
        var violation: String?
        var testDescription: String { text }
    }

    static let cases: [Case] = [
        Case(text: "p99>500ms", canonical: "p99>500ms", violation: "p99 990 ms > 500 ms"),
        Case(text: "  p99 > 1000 ms ", canonical: "p99>1000ms", violation: nil),
        Case(text: "p50>=20ms", canonical: "p50>=20ms", violation: "p50 500 ms >= 20 ms"),
        Case(text: "p50<=500ms", canonical: "p50<=500ms", violation: nil),
        Case(text: "p50<1s", canonical: "p50<1s", violation: "p50 0.5 s < 1 s"),
        Case(text: "max>2s", canonical: "max>2s", violation: nil),
        Case(text: "max>=1s", canonical: "max>=1s", violation: "max 1 s >= 1 s"),
        Case(text: "mean>500000us", canonical: "mean>500000us", violation: "mean 500500 us > 500000 us"),
        Case(text: "p99.9>998ms", canonical: "p99.9>998ms", violation: "p99.9 999 ms > 998 ms"),
        Case(text: "p99.total>150ms", canonical: "p99.total>150ms", violation: "p99.total 199 ms > 150 ms"),
        Case(
            text: "p99.standard.first_byte>90ms",
            canonical: "p99.standard.first_byte>90ms",
            violation: "p99.standard.first_byte 99 ms > 90 ms"
        ),
        Case(text: "p99.master>300ms", canonical: "p99.master>300ms", violation: nil),
        Case(
            text: "p99.9.standard.total>1ms",
            canonical: "p99.9.standard.total>1ms",
            violation: "p99.9.standard.total 200 ms > 1 ms"
        ),
        Case(text: "p99.tls>1ms", canonical: "p99.tls>1ms", violation: nil),
        Case(text: "P99.Phone>1ms", canonical: "p99.phone>1ms", violation: "p99.phone 990 ms > 1 ms"),
        Case(text: "failed>0", canonical: "failed>0", violation: "failed 3 > 0"),
        Case(text: "failed>3", canonical: "failed>3", violation: nil),
        Case(text: "fell_back>10", canonical: "fell_back>10", violation: nil),
        Case(text: "fell_back>=10", canonical: "fell_back>=10", violation: "fell_back 10 >= 10"),
        Case(text: "failed>0.2%", canonical: "failed>0.2%", violation: "failed 0.3% > 0.2% (3 of 1000 phones)"),
        Case(text: "errors>0", canonical: "errors>0", violation: "errors 48 > 0"),
        Case(text: "errors>1%", canonical: "errors>1%", violation: "errors 1.2% > 1% (48 of 4000 requests)"),
        Case(text: "errors.timeout>39", canonical: "errors.timeout>39", violation: "errors.timeout 40 > 39"),
        Case(text: "errors.dns>0", canonical: "errors.dns>0", violation: nil),
        Case(text: "http_status.404>0", canonical: "http_status.404>0", violation: "http_status.404 8 > 0"),
        Case(text: "provisioned<1000", canonical: "provisioned<1000", violation: "provisioned 987 < 1000"),
        Case(text: "phones<1000", canonical: "phones<1000", violation: nil),
        Case(text: "requests<4000", canonical: "requests<4000", violation: nil),
        Case(text: "phones_per_s<100", canonical: "phones_per_s<100", violation: nil),
        Case(text: "phones_per_s<101", canonical: "phones_per_s<101", violation: "phones_per_s 100 < 101"),
        Case(text: "requests_per_s<1000", canonical: "requests_per_s<1000", violation: "requests_per_s 400 < 1000"),
        Case(text: "steady_state_s>5", canonical: "steady_state_s>5", violation: "steady_state_s 10 s > 5 s"),
        Case(
            text: "steady_state>9000ms",
            canonical: "steady_state_s>9000ms",
            violation: "steady_state_s 10000 ms > 9000 ms"
        ),
        Case(text: "duration_s>60", canonical: "duration_s>60", violation: nil),
    ]

    @Test("each form parses and is evaluated", arguments: cases)
    func parseAndEvaluate(_ test: Case) throws {
        let threshold = try Threshold.parse(test.text)
        #expect(threshold.description == test.canonical)
        #expect(threshold.violation(in: report) == test.violation)
        #expect(try Threshold.parse(threshold.description) == threshold)
    }

    static let bad: [(String, String)] = [
        ("", "empty threshold: write METRIC>VALUE"),
        ("p99 500ms", "no comparison: write METRIC>VALUE"),
        ("failed=0", "'=' is not a comparison here"),
        ("p99==5ms", "'=' is not a comparison here"),
        (">5ms", "no metric before '>'"),
        ("p99>", "no value after '>'"),
        ("p99>>5ms", "one comparison only"),
        ("p99>500", "a latency needs a unit (us, ms or s), e.g. 'p99>500ms'"),
        ("p99>5h", "unknown unit 'h' for a latency; expected us, ms or s"),
        ("p99>fastms", "'fastms' is not a number with a unit"),
        ("p101>1ms", "'p101' is not a percentile from p0 to p100"),
        ("p>1ms", "'p' is not a percentile from p0 to p100"),
        ("latency>1ms", "unknown metric 'latency'; expected pNN"),
        ("p99.standrd>1ms", "'standrd' is not a stage (dns, connect, tls, first_byte, total), a file kind"),
        ("p99.standard.ttfb>1ms", "'ttfb' is not a stage"),
        ("p99.tls.standard>1ms", "'tls' is not a file kind"),
        ("p99.a.b.c>1ms", "too many parts"),
        ("failed>2ms", "failed is a count: write a plain number ('failed>0') or a share ('failed>1%')"),
        ("phones>5%", "'phones' is the whole"),
        ("phones_per_s<100ms", "phones_per_s is a rate per second"),
        ("failed.standard>0", "'failed' takes no '.standard'"),
        ("errors.time-out>0", "write 'errors' or 'errors.CLASS'"),
        ("http_status.abc>0", "write 'http_status.CODE'"),
        ("steady_state_s>1h", "unknown unit 'h' for a time"),
    ]

    @Test("bad thresholds are refused with what is expected", arguments: bad)
    func refusals(_ text: String, _ message: String) throws {
        let error = try #require(throws: FleetReportError.self) { try Threshold.parse(text) }
        #expect(error.kind == .invalidThreshold)
        #expect(error.message.contains(message), "\(error.message)")
    }

    @Test("a fleet where no phone finished never reached steady state")
    func noSteadyState() throws {
        let empty = FleetStats(startedAt: runStart).report(durationS: 1)
        let threshold = try Threshold.parse("steady_state_s>60")
        #expect(
            threshold.violation(in: empty)
                == "steady_state_s: no phone finished, so the fleet never reached steady state"
        )
        #expect(try Threshold.parse("p99>1ms").violation(in: empty) == nil)
        #expect(try Threshold.parse("phones_per_s<1").violation(in: empty) == "phones_per_s 0 < 1")
    }
}
