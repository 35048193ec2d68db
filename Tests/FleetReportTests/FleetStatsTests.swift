import FleetReport
import Foundation
import Testing

@Suite("FleetStats: recording")
struct FleetStatsTests {
    // MARK: - Percentiles

    @Test("percentiles of 1 … 1000 ms are within HDR's 0.1 % and never below the true value")
    func percentilesOfKnownInput() {
        let stats = FleetStats(startedAt: runStart)
        for millisecond in 1...1000 {
            stats.recordPhone(
                mac: mac(millisecond),
                outcome: "provisioned",
                intendedStartS: 0,
                completedAtS: Double(millisecond) / 1000,
                latencyUs: Int64(millisecond) * 1000,
                files: [:],
                error: nil
            )
            stats.recordRequest(
                file: "standard",
                outcome: "ok",
                httpStatus: 200,
                dnsUs: 0,
                connectUs: 0,
                tlsUs: 0,
                firstByteUs: 0,
                totalUs: Int64(millisecond) * 1000
            )
        }
        let report = stats.report(durationS: 1)
        for summary in [report.latencyMs, report.latency(.total), report.latency(.total, file: "standard")] {
            #expect(summary.count == 1000)
            for (value, expected) in [
                (summary.p50, 500.0), (summary.p90, 900.0), (summary.p99, 990.0), (summary.p999, 999.0),
            ] {
                #expect(value >= expected)
                #expect(value <= expected * 1.001)
            }
            #expect(summary.max == 1000)
            #expect(summary.mean == 500.5)
        }
        #expect(report.completionsPerS == [999, 1])
        #expect(report.steadyStateS == 1)
    }

    @Test("an empty collector reports zeros, not a crash")
    func emptyCollector() {
        let report = FleetStats(startedAt: runStart).report(durationS: 0)
        #expect(report.phones == 0)
        #expect(report.phonesPerS == 0)
        #expect(report.latencyMs == LatencySummary(count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0))
        #expect(report.steadyStateS == nil)
        #expect(report.latency(.tls).count == 0)
    }

    @Test("a latency beyond 10 minutes is kept, not dropped")
    func slowerThanTheRange() {
        let stats = FleetStats(startedAt: runStart)
        stats.recordRequest(
            file: "master",
            outcome: "timeout",
            httpStatus: nil,
            dnsUs: 0,
            connectUs: 0,
            tlsUs: 0,
            firstByteUs: 0,
            totalUs: 900_000_000
        )
        let summary = stats.report(durationS: 900).latency(.total)
        #expect(summary.count == 1)
        #expect(summary.max == 900_000)
    }

    // MARK: - Stage derivation

    struct Timing: Sendable, CustomTestStringConvertible {
        var name: String
        var cumulative: (dns: Int64, connect: Int64, tls: Int64, firstByte: Int64, total: Int64)
        /// The expected duration of each stage in µs, nil when the stage must not be recorded.
        var expected: [Stage: Int64?]
        var testDescription: String { name }
    }

    static let timings: [Timing] = [
        Timing(
            name: "plain HTTP",
            cumulative: (40, 180, 0, 950, 1_020),
            expected: [.dns: 40, .connect: 140, .tls: nil, .firstByte: 770, .total: 1_020]
        ),
        Timing(
            name: "HTTPS",
            cumulative: (40, 180, 2_180, 2_900, 3_000),
            expected: [.dns: 40, .connect: 140, .tls: 2_000, .firstByte: 720, .total: 3_000]
        ),
        Timing(
            name: "DNS failure",
            cumulative: (0, 0, 0, 0, 5_000),
            expected: [.dns: nil, .connect: nil, .tls: nil, .firstByte: nil, .total: 5_000]
        ),
        Timing(
            name: "connect failure",
            cumulative: (30, 0, 0, 0, 1_000_000),
            expected: [.dns: 30, .connect: nil, .tls: nil, .firstByte: nil, .total: 1_000_000]
        ),
        Timing(
            name: "IP literal (resolution reads 0)",
            cumulative: (0, 90, 0, 400, 410),
            expected: [.dns: 0, .connect: 90, .tls: nil, .firstByte: 310, .total: 410]
        ),
    ]

    @Test("per-stage durations derive from libcurl's cumulative timings", arguments: timings)
    func stageDerivation(_ timing: Timing) {
        let stats = FleetStats(startedAt: runStart)
        stats.recordRequest(
            file: "standard",
            outcome: "ok",
            httpStatus: 200,
            dnsUs: timing.cumulative.dns,
            connectUs: timing.cumulative.connect,
            tlsUs: timing.cumulative.tls,
            firstByteUs: timing.cumulative.firstByte,
            totalUs: timing.cumulative.total
        )
        let report = stats.report(durationS: 1)
        for stage in Stage.allCases {
            for summary in [report.latency(stage), report.latency(stage, file: "standard")] {
                if let expected = timing.expected[stage], let expected {
                    #expect(summary.count == 1, "\(stage)")
                    #expect(summary.p50 == Double(expected) / 1000, "\(stage)")
                    #expect(summary.max == Double(expected) / 1000, "\(stage)")
                } else {
                    #expect(summary.count == 0, "\(stage) must not be recorded")
                }
            }
            #expect(report.latency(stage, file: "master").count == 0)
        }
    }

    // MARK: - Outcomes

    @Test("outcomes are counted by class, file kind and HTTP status")
    func outcomeCounting() {
        let stats = FleetStats(startedAt: runStart, expectedPhones: 5)
        let requests: [(String, String, Int?)] = [
            ("initial", "ok", 200), ("standard", "ok", 200), ("standard", "not_found", 404),
            ("product", "timeout", nil), ("product", "timeout", nil), ("master", "http_status", 503),
            ("certificate", "tls", nil), ("initial", "ok", 0),
        ]
        for (file, outcome, status) in requests {
            stats.recordRequest(
                file: file,
                outcome: outcome,
                httpStatus: status,
                dnsUs: 10,
                connectUs: 20,
                tlsUs: 0,
                firstByteUs: 30,
                totalUs: 40
            )
        }
        for (index, outcome) in ["provisioned", "provisioned", "fell_back", "failed"].enumerated() {
            stats.recordPhone(
                mac: mac(index),
                outcome: outcome,
                intendedStartS: 0,
                completedAtS: 2.5,
                latencyUs: 1_000,
                files: [:],
                error: nil
            )
        }
        let report = stats.report(durationS: 2)
        #expect(report.requests == 8)
        #expect(report.errors == ["not_found": 1, "timeout": 2, "http_status": 1, "tls": 1])
        #expect(report.errorCount == 5)
        #expect(report.httpStatus == [200: 2, 404: 1, 503: 1, 0: 1])
        #expect(report.requestsByFile["product"] == ["timeout": 2])
        #expect(report.requestsByFile["initial"] == ["ok": 2])
        #expect(report.fileKinds == ["initial", "standard", "product", "master", "certificate"])
        #expect(report.phones == 4)
        #expect((report.provisioned, report.fellBack, report.failed) == (2, 1, 1))
        #expect(report.phonesPerS == 2)
        #expect(report.requestsPerS == 4)
        #expect(report.completionsPerS == [0, 0, 4])

        let progress = stats.progress(now: runStart.addingTimeInterval(2))
        #expect(progress.done == 4)
        #expect(progress.total == 5)
        #expect(progress.errors == 5)
        #expect(progress.ratePerS == 2)
        #expect(progress.p99Ms == 1)
        #expect(progress.line == "phones 4/5  2/s  ok 2  fell back 1  failed 1  errors 5  p99 1 ms")
    }

    @Test("the progress rate stops at the last phone's time once every phone is done")
    func progressRateFreezesWhenAllAreDone() {
        func done(_ k: Int, at completedAtS: Double, in stats: FleetStats) {
            stats.recordPhone(
                mac: mac(k),
                outcome: "provisioned",
                intendedStartS: 0,
                completedAtS: completedAtS,
                latencyUs: 1_000,
                files: [:],
                error: nil
            )
        }
        let stats = FleetStats(startedAt: runStart, expectedPhones: 4)
        for k in 0..<3 { done(k, at: 1 + Double(k) * 0.5, in: stats) }
        // Still booting: done over the time since the start.
        #expect(stats.progress(now: runStart.addingTimeInterval(6)).ratePerS == 0.5)
        done(3, at: 2, in: stats)
        // All done at 2 s: the rate stays 4 / 2 however long the store (or a --duration run) goes on.
        #expect(stats.progress(now: runStart.addingTimeInterval(8)).ratePerS == 2)
        #expect(stats.progress(now: runStart.addingTimeInterval(3_600)).ratePerS == 2)
        // Without a known total there is no "all done": since the start.
        let open = FleetStats(startedAt: runStart)
        done(1, at: 1, in: open)
        #expect(open.progress(now: runStart.addingTimeInterval(4)).ratePerS == 0.25)
    }

    // MARK: - Concurrency and cost

    @Test("8 threads recording 10,000 each lose nothing")
    func concurrentRecording() {
        let stats = FleetStats(startedAt: runStart)
        let threads = 8
        let each = 10_000
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for index in 0..<each {
                stats.recordRequest(
                    file: fileKinds[index % fileKinds.count],
                    outcome: index % 100 == 0 ? "timeout" : "ok",
                    httpStatus: index % 100 == 0 ? nil : 200,
                    dnsUs: 10,
                    connectUs: 100,
                    tlsUs: 0,
                    firstByteUs: Int64(200 + index % 1000),
                    totalUs: Int64(300 + index % 1000)
                )
                if index % 10 == 0 {
                    stats.recordPhone(
                        mac: mac(thread * each + index),
                        outcome: "provisioned",
                        intendedStartS: 0,
                        completedAtS: 1,
                        latencyUs: 5_000,
                        files: ["initial": "ok"],
                        error: nil
                    )
                }
                if index % 2_000 == 0 {
                    _ = stats.progress()
                }
            }
        }
        let report = stats.report(durationS: 1)
        #expect(report.requests == threads * each)
        #expect(report.latency(.total).count == threads * each)
        #expect(report.latency(.dns).count == threads * each)
        #expect(report.errors == ["timeout": threads * each / 100])
        #expect(report.httpStatus[200] == threads * each * 99 / 100)
        #expect(report.phones == threads * each / 10)
        #expect(stats.csv().split(separator: "\n").count == threads * each / 10 + 1)
    }

    @Test("the cost of recording 10,000 phones × 5 requests (printed, not asserted)")
    func recordingCost() {
        let stats = FleetStats(startedAt: runStart, expectedPhones: 10_000)
        let kinds = fileKinds + ["certificate"]
        let files = ["initial": "ok", "standard": "ok", "product": "ok", "master": "ok"]
        let macs = (0..<10_000).map(mac)
        let clock = ContinuousClock()
        let requests = clock.measure {
            for phone in 0..<10_000 {
                for (index, file) in kinds.enumerated() {
                    let total = Int64(1_000 + (phone * 37 + index * 101) % 400_000)
                    stats.recordRequest(
                        file: file,
                        outcome: phone % 50 == index ? "timeout" : "ok",
                        httpStatus: phone % 50 == index ? nil : 200,
                        dnsUs: 30,
                        connectUs: 150,
                        tlsUs: index == 4 ? 2_000 : 0,
                        firstByteUs: total - 20,
                        totalUs: total
                    )
                }
            }
        }
        let phones = clock.measure {
            for phone in 0..<10_000 {
                stats.recordPhone(
                    mac: macs[phone],
                    outcome: "provisioned",
                    intendedStartS: 0,
                    completedAtS: Double(phone) / 1000,
                    latencyUs: Int64(5_000 + phone),
                    files: files,
                    error: nil
                )
            }
        }
        func ms(_ duration: Duration) -> String {
            let (seconds, attoseconds) = duration.components
            return String(Double(seconds) * 1000 + Double(attoseconds / 1_000_000_000_000) / 1000) + " ms"
        }
        print("FleetStats: 50,000 recordRequest took \(ms(requests)), 10,000 recordPhone took \(ms(phones))")
        #expect(stats.report(durationS: 10).requests == 50_000)
        #expect(stats.report(durationS: 10).phones == 10_000)
    }
}
