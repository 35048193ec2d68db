import FleetReport
import Foundation
import Testing

/// A fleet of 300 synthetic phones, some over HTTPS, some failing.
private func sampleStats(shard: String? = nil) -> FleetStats {
    let stats = FleetStats(startedAt: runStart, shard: shard, expectedPhones: 300)
    for index in 0..<300 {
        feedPhone(index, into: stats)
    }
    return stats
}

@Suite("FleetReport: JSON, CSV, HTML, Prometheus")
struct FleetReportOutputTests {
    // MARK: - JSON

    @Test("JSON round trip: decode(encode(report)) == report, byte-identical when written again")
    func jsonRoundTrip() throws {
        let report = sampleStats(shard: "2/4").report(durationS: 12.345_678_9)
        let bytes = report.json()
        let decoded = try FleetReport(json: bytes)
        #expect(decoded == report)
        #expect(decoded.json() == bytes)
        #expect(report.json() == bytes)
        #expect(decoded.latency(.firstByte, file: "standard") == report.latency(.firstByte, file: "standard"))
        #expect(decoded.phoneHistogram.maxRecorded == report.phoneHistogram.maxRecorded)
        #expect(decoded.phoneHistogram.min == report.phoneHistogram.min)
        // The Codable conformance alone gives the same (what `JSONDecoder().decode` callers get).
        #expect(try JSONDecoder().decode(FleetReport.self, from: Data(bytes)) == report)
    }

    @Test("JSON has the required keys")
    func jsonKeys() throws {
        let report = sampleStats().report(durationS: 2)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(report.json())) as? [String: Any])
        for key in [
            "phones", "provisioned", "fell_back", "failed", "duration_s", "phones_per_s", "requests",
            "requests_per_s", "latency_ms", "errors", "http_status", "steady_state_s", "completions_per_s", "shard",
            "histograms", "format", "version", "started_at", "requests_by_file",
        ] {
            #expect(object[key] != nil, "missing \(key)")
        }
        #expect(object["shard"] is NSNull)
        #expect(object["phones"] as? Int == 300)
        #expect(object["started_at"] as? String == "2025-01-06T08:00:00.250Z")
        let latency = try #require(object["latency_ms"] as? [String: Any])
        for key in ["p50", "p90", "p99", "max", "phone", "dns", "connect", "tls", "first_byte", "total", "by_file"] {
            #expect(latency[key] != nil, "missing latency_ms.\(key)")
        }
        #expect(latency["p99"] as? Double == report.latencyMs.p99)
        let byFile = try #require(latency["by_file"] as? [String: [String: [String: Any]]])
        #expect(byFile.keys.sorted() == fileKinds.sorted())
        #expect(Set(byFile["standard"]?.keys.map { $0 } ?? []) == Set(Stage.allCases.map(\.rawValue)))
        #expect(byFile["master"]?["total"]?["p99"] as? Double == report.latency(.total, file: "master").p99)
        let status = try #require(object["http_status"] as? [String: Int])
        #expect(status["200"] == report.httpStatus[200])
        #expect((object["completions_per_s"] as? [Int])?.reduce(0, +) == 300)
    }

    @Test("unreadable JSON is refused with a message saying what is wrong")
    func jsonRefusals() throws {
        let good = text(sampleStats().report(durationS: 1).json())
        // The first histogram's count, one more than its buckets hold.
        let countRange = try #require(good.range(of: #""count" : [0-9]+"#, options: .regularExpression))
        let count = try #require(Int(good[countRange].split(separator: " ").last ?? ""))
        let miscounted = good.replacingCharacters(in: countRange, with: "\"count\" : \(count + 1)")
        let cases: [(String, String)] = [
            ("not json", "not a readable vphone fleet report"),
            (miscounted, "is damaged: bucket counts add up to \(count), not \(count + 1)"),
            (good.replacingOccurrences(of: "\"buckets\" : \"", with: "\"buckets\" : \"!"), "'buckets' is not base64"),
            ("{\"phones\": 3}", "not a vphone fleet report (its \"format\" is missing"),
            (good.replacingOccurrences(of: "\"version\" : 1", with: "\"version\" : 2"), "format version 2"),
            (
                good.replacingOccurrences(of: "\"phone_outcomes\"", with: "\"phone_outcomez\""),
                "missing 'phone_outcomes'"
            ),
            (good.replacingOccurrences(of: "\"digits\" : 3", with: "\"digits\" : 2"), "2 significant digits"),
            (
                good.replacingOccurrences(of: "\"started_at\" : \"2025", with: "\"started_at\" : \"yesterday"),
                "started_at"
            ),
            (
                good.replacingOccurrences(of: "\"loop_s\" : 0", with: "\"loop_s\" : -1"),
                "'at_in_flight_limit_s' and 'loop_s' must be seconds, 0 or more"
            ),
        ]
        for (json, message) in cases {
            let error = try #require(throws: FleetReportError.self) { try FleetReport(json: Array(json.utf8)) }
            #expect(error.kind == .invalidReport)
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    @Test("the report keeps the waits: in its JSON exactly, added up by a merge, and as Prometheus metrics")
    func inFlightWaits() throws {
        let a = FleetStats(startedAt: runStart).report(durationS: 10).withInFlightWaits([3.25, 2])
        let b = FleetStats(startedAt: runStart).report(durationS: 4).withInFlightWaits([0.5])
        let json = String(decoding: a.json(), as: UTF8.self)
        #expect(json.contains("\"at_in_flight_limit_s\" : 5.25") && json.contains("\"loop_s\" : 20"))
        #expect(json.contains("\"in_flight_limit_share\" : 0.263"))
        let read = try FleetReport(json: a.json())
        #expect(read == a)
        let merged = try FleetReport.merge([a, b])
        #expect(merged.atInFlightLimitS == 5.75 && merged.loopS == 24)
        let metrics = a.prometheus()
        #expect(metrics.contains("vphone_fleet_in_flight_limit_wait_seconds_total 5.25\n"))
        #expect(metrics.contains("vphone_fleet_in_flight_limit_share 0.2625\n"))
        // Not measured (a report from before, or a run without loops): no share, no metric, no note.
        let none = FleetStats(startedAt: runStart).report(durationS: 10)
        #expect(none.inFlightLimitShare == nil && !none.prometheus().contains("in_flight_limit"))
        let older = json.replacingOccurrences(of: "\"at_in_flight_limit_s\" : 5.25,", with: "")
            .replacingOccurrences(of: "\"loop_s\" : 20,", with: "")
        #expect(older != json)
        #expect(try FleetReport(json: Array(older.utf8)).inFlightLimitShare == nil)
    }

    // MARK: - CSV

    @Test("CSV: header, one row per phone sorted by MAC, fields quoted and neutralised")
    func csvShape() throws {
        let stats = FleetStats(startedAt: runStart)
        let phones: [(String, String, String?)] = [
            ("00:80:f0:00:00:0b", "failed", "standard: 404, \"Not Found\""),
            ("0080F000000A", "provisioned", nil),
            ("0080F0000002", "fell_back", "=HYPERLINK(\"http://evil\")"),
        ]
        for (index, (mac, outcome, error)) in phones.enumerated() {
            stats.recordPhone(
                mac: mac,
                outcome: outcome,
                intendedStartS: Double(index),
                completedAtS: Double(index) + 0.412_479,
                latencyUs: 412_479,
                files: ["initial": "ok", "standard": outcome == "failed" ? "not_found" : "ok", "certificate": "ok"],
                error: error
            )
        }
        let lines = stats.csv().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(
            lines == [
                "mac,outcome,latency_ms,intended_start_s,completed_at_s,initial,standard,product,master,error",
                "0080F0000002,fell_back,412.479,2.000,2.412,ok,ok,,,\"'=HYPERLINK(\"\"http://evil\"\")\"",
                "0080F000000A,provisioned,412.479,1.000,1.412,ok,ok,,,",
                "00:80:f0:00:00:0b,failed,412.479,0.000,0.412,ok,not_found,,,\"standard: 404, \"\"Not Found\"\"\"",
                "",
            ]
        )
    }

    // MARK: - HTML

    @Test("HTML: self-contained, two SVG charts, hostile strings escaped")
    func html() {
        let stats = sampleStats(shard: "1/2\"><script>")
        stats.recordRequest(
            file: "<img src=x onerror=alert(1)>",
            outcome: "<script>alert(\"class\")</script>",
            httpStatus: 500,
            dnsUs: 1,
            connectUs: 2,
            tlsUs: 0,
            firstByteUs: 3,
            totalUs: 4
        )
        let page = stats.report(durationS: 1.5).html(title: "Monday 8am <script>alert('x')</script> & co")
        #expect(page.hasPrefix("<!DOCTYPE html>"))
        #expect(page.components(separatedBy: "<svg ").count - 1 == 2)
        #expect(page.contains("<polyline"))
        #expect(page.contains("class=\"bar\""))
        #expect(page.contains("steady state"))
        #expect(page.contains("Monday 8am &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"))
        #expect(page.contains("&lt;img src=x onerror=alert(1)&gt;"))
        #expect(page.contains("&lt;script&gt;alert(&quot;class&quot;)&lt;/script&gt;"))
        #expect(!page.contains("<script"))
        #expect(!page.contains("<img"))
        #expect(!page.contains("http://") || !page.contains("src=\"http"))
        #expect(!page.contains("<link"))
    }

    @Test("HTML of an empty report still renders")
    func emptyHTML() {
        let page = FleetStats(startedAt: runStart).report(durationS: 0).html(title: "empty")
        #expect(page.contains("No samples yet."))
        #expect(page.contains("No phone finished yet."))
        #expect(page.hasSuffix("</html>\n"))
    }

    // MARK: - Prometheus

    @Test("Prometheus text parses line by line, HELP and TYPE before samples, no per-phone labels")
    func prometheus() throws {
        let stats = sampleStats()
        stats.recordRequest(
            file: "standard",
            outcome: "odd\"class\\with\nbreaks",
            httpStatus: nil,
            dnsUs: 1,
            connectUs: 2,
            tlsUs: 0,
            firstByteUs: 3,
            totalUs: 4
        )
        let report = stats.report(durationS: 3)
        let exposition = report.prometheus()
        // name{label="value",…} value, label values escaped as the format says.
        let label = #"[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*""#
        let sample = try Regex(
            #"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{"# + label + "(," + label + #")*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$"#
        )
        var helped: Set<String> = []
        var typed: [String: String] = [:]
        var samples = 0
        for line in exposition.split(separator: "\n").map(String.init) {
            if line.hasPrefix("# HELP ") {
                let name = String(line.dropFirst(7).prefix { $0 != " " })
                #expect(helped.insert(name).inserted, "HELP twice for \(name)")
            } else if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                #expect(parts.count == 4)
                let name = String(parts[2])
                #expect(helped.contains(name), "TYPE before HELP for \(name)")
                #expect(["counter", "gauge", "summary"].contains(String(parts[3])))
                typed[name] = String(parts[3])
            } else {
                let match = try #require(try sample.wholeMatch(in: line), "not a sample line: \(line)")
                let name = String(try #require(match.output[1].substring))
                let family = typed.keys.first { family in
                    name == family
                        || (typed[family] == "summary" && (name == family + "_sum" || name == family + "_count"))
                }
                #expect(family != nil, "sample \(name) before its # TYPE")
                #expect(!line.lowercased().contains("mac="))
                #expect(!line.contains("0080F0"))
                samples += 1
            }
        }
        #expect(samples > 50)
        #expect(exposition.contains("vphone_fleet_phones_total{outcome=\"provisioned\"} \(report.provisioned)\n"))
        #expect(exposition.contains("vphone_fleet_requests_total{file=\"standard\",outcome=\"ok\"} "))
        #expect(
            exposition.contains("vphone_fleet_http_responses_total{code=\"200\"} \(report.httpStatus[200] ?? -1)\n")
        )
        #expect(exposition.contains("vphone_fleet_request_duration_seconds{stage=\"total\",quantile=\"0.99\"} "))
        #expect(exposition.contains("vphone_fleet_phone_latency_seconds_count \(report.phones)\n"))
        #expect(exposition.contains("outcome=\"odd\\\"class\\\\with\\nbreaks\""))
        // Cardinality does not grow with phones: a 10× larger fleet has the same number of series.
        let bigger = FleetStats(startedAt: runStart)
        for index in 0..<3_000 {
            feedPhone(index, into: bigger)
        }
        let seriesSmall = sampleStats().report(durationS: 3).prometheus().split(separator: "\n").count
        let seriesBig = bigger.report(durationS: 3).prometheus().split(separator: "\n").count
        #expect(seriesSmall == seriesBig)
    }
}
