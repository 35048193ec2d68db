import FlyingSocks

/// A response body sent in pieces with pauses between them, optionally broken off or never ending: what trickling,
/// half-closed and endless responses are made of.
struct PacedBytes: AsyncBufferedSequence, Sendable {
    typealias Element = UInt8

    /// The bytes to send (repeated forever when `endless`).
    var bytes: [UInt8]
    /// At most this many bytes per piece.
    var piece: Int
    /// Pause before every piece but the first.
    var pauseNanoseconds: UInt64
    /// After this many bytes the body fails, which makes the server close the connection mid-body.
    var breakAfter: Int? = nil
    var endless = false

    struct BrokenOff: Error {}

    func makeAsyncIterator() -> Iterator { Iterator(spec: self) }

    struct Iterator: AsyncBufferedIteratorProtocol {
        let spec: PacedBytes
        var sent = 0
        var offset = 0

        mutating func next() async throws -> UInt8? {
            try await nextBuffer(suggested: 1)?.first
        }

        mutating func nextBuffer(suggested count: Int) async throws -> [UInt8]? {
            if let limit = spec.breakAfter, sent >= limit { throw BrokenOff() }
            if spec.bytes.isEmpty { return nil }
            if offset == spec.bytes.count {
                guard spec.endless else { return nil }
                offset = 0
            }
            if sent > 0, spec.pauseNanoseconds > 0 { try await Task.sleep(nanoseconds: spec.pauseNanoseconds) }
            var size = Swift.min(spec.piece, Swift.max(count, 1), spec.bytes.count - offset)
            if let limit = spec.breakAfter { size = Swift.min(size, limit - sent) }
            let out = Array(spec.bytes[offset..<(offset + size)])
            offset += size
            sent += size
            return out
        }
    }
}
