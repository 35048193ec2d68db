import FleetReport
import Foundation
import PhoneCore
import Testing

/// A fixed wall-clock start, so reports are reproducible.
let runStart = Date(timeIntervalSince1970: 1_736_150_400.25)

let fileKinds = ["initial", "standard", "product", "master"]
let failureClasses = ["not_found", "timeout", "connect", "http_status"]

func mac(_ index: Int) -> String {
    let hex = String(0x0080_F000_0000 + index, radix: 16, uppercase: true)
    return String(repeating: "0", count: 12 - hex.count) + hex
}

/// Feeds phone `index` of a synthetic fleet into `stats`: four transfers (one in ten over HTTPS, one in twelve
/// failing) and the phone's outcome. The same index always gives the same numbers.
func feedPhone(_ index: Int, into stats: FleetStats) {
    var random = SplitMix64(seed: UInt64(index) &* 7919)  // every "random" fleet is the same on every run
    var files: [String: String] = [:]
    var elapsed: Int64 = 0
    let tls = index % 10 == 0
    var failedFile = false
    for file in fileKinds {
        let dns = Int64(20 + random.below(200))
        let connect = dns + Int64(50 + random.below(2_000))
        let handshake: Int64 = tls ? connect + Int64(1_000 + random.below(5_000)) : 0
        let firstByte = max(connect, handshake) + Int64(100 + random.below(300_000))
        let total = firstByte + Int64(random.below(5_000))
        let failure = random.below(12) == 0 ? failureClasses[random.below(failureClasses.count)] : nil
        let outcome = failure ?? "ok"
        let status: Int? =
            switch failure {
            case nil: 200
            case "not_found": 404
            case "http_status": 503
            default: nil
            }
        stats.recordRequest(
            file: file,
            outcome: outcome,
            httpStatus: status,
            dnsUs: dns,
            connectUs: failure == "connect" ? 0 : connect,
            tlsUs: failure == "connect" ? 0 : handshake,
            firstByteUs: status == nil ? 0 : firstByte,
            totalUs: total
        )
        files[file] = outcome
        failedFile = failedFile || failure != nil
        elapsed += total
    }
    let intended = Double(index) / 1000
    let latency = elapsed + Int64(random.below(10_000))
    let outcome = failedFile ? (index % 3 == 0 ? "failed" : "fell_back") : "provisioned"
    stats.recordPhone(
        mac: mac(index),
        outcome: outcome,
        intendedStartS: intended,
        completedAtS: intended + Double(latency) / 1_000_000,
        latencyUs: latency,
        files: files,
        error: failedFile ? "a file failed" : nil
    )
}

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
