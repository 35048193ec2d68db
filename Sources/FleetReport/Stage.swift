/// A phase of one transfer, as libcurl times it.
public enum Stage: String, CaseIterable, Codable, Sendable {
    /// Name resolution.
    case dns
    /// TCP connect (or TFTP's UDP "connect"), after resolution.
    case connect
    /// TLS handshake, after the TCP connect; only HTTPS transfers have one.
    case tls
    /// From the connection being ready (connected, and the handshake done for HTTPS) to the first response byte.
    case firstByte = "first_byte"
    /// The whole transfer, from its start to its end (or its failure).
    case total

    var index: Int {
        switch self {
        case .dns: 0
        case .connect: 1
        case .tls: 2
        case .firstByte: 3
        case .total: 4
        }
    }
}

/// Per-stage durations of one transfer, derived from libcurl's cumulative timings (each counted from the start of
/// the transfer; a phase not reached reads 0). A stage the transfer never reached is absent (-1), not a zero that
/// would drag its percentiles down.
struct StageDurations {
    var values: (Int64, Int64, Int64, Int64, Int64) = (-1, -1, -1, -1, -1)

    init(dnsUs: Int64, connectUs: Int64, tlsUs: Int64, firstByteUs: Int64, totalUs: Int64) {
        // Resolution finished if it reports time, or if a later phase was reached (an IP literal can read 0).
        if dnsUs > 0 || connectUs > 0 {
            values.0 = max(dnsUs, 0)
        }
        if connectUs > 0 {
            values.1 = max(connectUs - max(dnsUs, 0), 0)
        }
        if tlsUs > 0 {
            values.2 = max(tlsUs - max(connectUs, 0), 0)
        }
        if firstByteUs > 0 {
            values.3 = max(firstByteUs - max(connectUs, tlsUs, 0), 0)
        }
        values.4 = max(totalUs, 0)
    }
}
