import ConfigFormats
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The bytes of a saved file, kept as they came or as a delta against a body the whole fleet shares.
///
/// A fleet's phones keep the last good copy of each file for fallback (spec §6). The product, master and initial
/// files are the same for every phone, and the standard files come from one template with the phone's own values,
/// so most of a phone's 8 KB copy is bytes every phone has. A delta (copies from the shared reference, literals for
/// the rest) keeps one of those in about 1 KB; `bytes` gives the file back exactly.
public struct SavedBody: Sendable {
    enum Storage: Sendable {
        case plain([UInt8])
        /// Operations against `reference`, and the length of the body they make.
        case delta(DeltaReference, ops: [UInt8], count: Int)
    }

    let storage: Storage

    public init(_ bytes: [UInt8]) { storage = .plain(bytes) }
    init(storage: Storage) { self.storage = storage }

    /// The file, byte for byte.
    public var bytes: [UInt8] {
        switch storage {
        case .plain(let b): return b
        case .delta(let reference, let ops, let count): return BodyDelta.apply(ops, to: reference.bytes, count: count)
        }
    }

    public var count: Int {
        switch storage {
        case .plain(let b): return b.count
        case .delta(_, _, let count): return count
        }
    }

    /// For a body that is a whole copy of a body the fleet shares (a phone's product, master or initial file), an
    /// object that stands for exactly these bytes for as long as it lives: a store can remember where it wrote them,
    /// and neither rebuild, hash nor compare the next phone's copy. Nil for a body of the phone's own.
    public var sharedContent: AnyObject? {
        guard case .delta(let reference, let ops, let count) = storage, count == reference.bytes.count,
            ops == BodyDelta.copyAll(count)
        else { return nil }
        return reference
    }
}

extension SavedBody: Hashable {
    public static func == (a: SavedBody, b: SavedBody) -> Bool {
        if case .plain(let x) = a.storage, case .plain(let y) = b.storage { return x == y }
        if case .delta(let r1, let o1, let c1) = a.storage, case .delta(let r2, let o2, let c2) = b.storage, r1 === r2,
            o1 == o2
        {
            return c1 == c2
        }
        return a.count == b.count && a.bytes == b.bytes
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
}

/// A body deltas are made against, with an index of its 8-byte windows (`BodyDelta.encode(_:against:)` looks for a
/// body's differences in it).
final class DeltaReference: Sendable {
    let bytes: [UInt8]
    /// 4 candidate positions (+1; 0 is empty) per bucket of window hashes; empty when not `indexed`.
    let index: [Int32]
    let mask: Int

    static let window = 8
    static let ways = 4

    /// - Parameter indexed: make the index (128 KB for an 8 KB body). A template's body, which deltas are made
    ///   against from their changes alone (`BodyDelta.encode(_:of:referenceCount:)`), needs none.
    init(_ bytes: [UInt8], indexed: Bool = true) {
        self.bytes = bytes
        guard indexed else {
            index = []
            mask = 0
            return
        }
        var buckets = 64
        while buckets < bytes.count { buckets <<= 1 }
        mask = buckets - 1
        var index = [Int32](repeating: 0, count: buckets * Self.ways)
        if bytes.count >= Self.window {
            bytes.withUnsafeBufferPointer { all in
                for p in 0...(all.count - Self.window) {
                    let b = (Self.hash(all, at: p) & (buckets - 1)) * Self.ways
                    for w in 0..<Self.ways where index[b + w] == 0 {
                        index[b + w] = Int32(p + 1)
                        break
                    }
                }
            }
        }
        self.index = index
    }

    @inline(__always) static func hash(_ bytes: UnsafeBufferPointer<UInt8>, at p: Int) -> Int {
        var v: UInt64 = 0
        for k in 0..<window { v = v << 8 | UInt64(bytes[p + k]) }
        return Int(truncatingIfNeeded: (v &* 0x9E37_79B9_7F4A_7C15) >> 40)
    }

}

/// A copy/literal delta codec: `[len << 1 | 1, offset]` copies `len` bytes of the reference from `offset`,
/// `[len << 1, bytes...]` is a literal (both numbers are LEB128 varints).
enum BodyDelta {
    static let minimumMatch = 8
    /// How far past a changed byte the reference is looked for where the same-length assumption puts it, and how
    /// long the match found there must be.
    static let maxResync = 24
    static let resyncMatch = 24

    static func encode(_ target: [UInt8], against reference: DeltaReference) -> [UInt8] {
        var ops: [UInt8] = []
        ops.reserveCapacity(256)
        let source = reference.bytes
        source.withUnsafeBufferPointer { r in
            target.withUnsafeBufferPointer { t in
                var literalStart = 0
                var i = 0
                // Where the reference would continue if the target's next bytes follow it (same-length values).
                var expected = 0
                func matchLength(_ p: Int, _ i: Int) -> Int {
                    BodyBytes.commonPrefix(
                        UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: r[p...])),
                        UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: t[i...]))
                    )
                }
                /// How far on from `i` the reference resumes at `expected`, for `resyncMatch` bytes at least (or to the
                /// end): shorter runs are as likely chance (a closing tag, a name's common prefix) as a resumed copy,
                /// and the index finds better.
                func resync(_ i: Int, _ expected: Int) -> Int? {
                    for skip in 1...maxResync {
                        guard i + skip + minimumMatch <= t.count, expected + skip < r.count else { return nil }
                        let n = matchLength(expected + skip, i + skip)
                        if n >= resyncMatch || n >= minimumMatch && i + skip + n == t.count { return skip }
                    }
                    return nil
                }
                // No comparing forward before here: the same-length assumption failed at this point not long ago.
                var resyncFrom = 0
                while i + minimumMatch <= t.count {
                    var bestPos = -1
                    var bestLen = 0
                    if expected < r.count {
                        let n = matchLength(expected, i)
                        if n >= minimumMatch {
                            bestPos = expected
                            bestLen = n
                        }
                    }
                    if bestLen < minimumMatch && i >= resyncFrom {
                        // A value changed in place (same length, as per-phone values mostly are): the reference
                        // resumes a few bytes on. Comparing forward finds that without an index probe (a cache miss
                        // each) at every changed byte; the bytes up to there are literal.
                        if let skip = resync(i, expected) {
                            i += skip
                            expected += skip
                            continue
                        }
                        // Not a same-length change (new text, a value of another length): probe the index byte by
                        // byte, and do not compare forward again for the next `maxResync` bytes.
                        resyncFrom = i + maxResync
                    }
                    if bestLen < 64 && r.count >= DeltaReference.window && !reference.index.isEmpty {
                        let b = (DeltaReference.hash(t, at: i) & reference.mask) * DeltaReference.ways
                        for w in 0..<DeltaReference.ways {
                            let candidate = Int(reference.index[b + w]) - 1
                            if candidate < 0 { break }
                            let n = matchLength(candidate, i)
                            if n > bestLen {
                                bestPos = candidate
                                bestLen = n
                            }
                        }
                    }
                    guard bestLen >= minimumMatch else {
                        i += 1
                        expected += 1
                        continue
                    }
                    // Grow the match backwards over literal bytes that the reference has too.
                    while i > literalStart && bestPos > 0 && r[bestPos - 1] == t[i - 1] {
                        i -= 1
                        bestPos -= 1
                        bestLen += 1
                    }
                    if i > literalStart { literal(t, literalStart..<i, into: &ops) }
                    varint(bestLen << 1 | 1, into: &ops)
                    varint(bestPos, into: &ops)
                    i += bestLen
                    literalStart = i
                    expected = bestPos + bestLen
                }
                if t.count > literalStart { literal(t, literalStart..<t.count, into: &ops) }
            }
        }
        return ops
    }

    static func copyAll(_ count: Int) -> [UInt8] {
        var ops: [UInt8] = []
        varint(count << 1 | 1, into: &ops)
        varint(0, into: &ops)
        return ops
    }

    /// The ops that make `target` from a reference of `referenceCount` bytes that `target` is with `changes` put in
    /// (`PlainXMLTemplate.rebuilt`): copies of the reference between them, the changed bytes as literals. No search,
    /// written straight into their buffer (a fleet makes them for every phone).
    static func encode(_ changes: [TemplateChange], of target: [UInt8], referenceCount: Int) -> [UInt8] {
        // Two passes: the size, then the bytes, so the array is no bigger than its ops (a fleet keeps one per phone).
        @inline(__always) func varintSize(_ value: Int) -> Int {
            var v = UInt(value) >> 7
            var n = 1
            while v > 0 {
                v >>= 7
                n += 1
            }
            return n
        }
        var size = 0
        var from = 0
        for change in changes {
            // In order, inside the reference and the target: what `PlainXMLTemplate.rebuilt` takes.
            precondition(
                change.template.lowerBound >= from && change.template.upperBound <= referenceCount
                    && change.file.upperBound <= target.count,
                "template changes out of order or out of range"
            )
            if change.template.lowerBound > from {
                size += varintSize((change.template.lowerBound - from) << 1 | 1) + varintSize(from)
            }
            if !change.file.isEmpty { size += varintSize(change.file.count << 1) + change.file.count }
            from = change.template.upperBound
        }
        if referenceCount > from { size += varintSize((referenceCount - from) << 1 | 1) + varintSize(from) }
        return target.withUnsafeBufferPointer { t in
            [UInt8](unsafeUninitializedCapacity: size) { out, count in
                var n = 0
                @inline(__always) func varint(_ value: Int) {
                    var v = UInt(value)
                    while v >= 0x80 {
                        out[n] = UInt8(v & 0x7F) | 0x80
                        n += 1
                        v >>= 7
                    }
                    out[n] = UInt8(v)
                    n += 1
                }
                @inline(__always) func copy(_ from: Int, _ to: Int) {
                    guard to > from else { return }
                    varint((to - from) << 1 | 1)
                    varint(from)
                }
                var from = 0
                for change in changes {
                    copy(from, change.template.lowerBound)
                    let length = change.file.count
                    if length > 0 {
                        varint(length << 1)
                        UnsafeMutableRawPointer(out.baseAddress! + n).copyMemory(
                            from: t.baseAddress! + change.file.lowerBound,
                            byteCount: length
                        )
                        n += length
                    }
                    from = change.template.upperBound
                }
                copy(from, referenceCount)
                precondition(n == size, "template delta of \(n) bytes, \(size) counted")
                count = n
            }
        }
    }

    static func apply(_ ops: [UInt8], to reference: [UInt8], count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var k = 0
        while k < ops.count {
            let header = readVarint(ops, &k)
            let length = header >> 1
            if header & 1 == 1 {
                let offset = readVarint(ops, &k)
                out += reference[offset..<(offset + length)]
            } else {
                out += ops[k..<(k + length)]
                k += length
            }
        }
        return out
    }

    private static func literal(_ t: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into ops: inout [UInt8]) {
        varint(range.count << 1, into: &ops)
        ops.append(contentsOf: UnsafeBufferPointer(rebasing: t[range]))
    }

    private static func varint(_ value: Int, into ops: inout [UInt8]) {
        var v = UInt(value)
        while v >= 0x80 {
            ops.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        ops.append(UInt8(v))
    }

    private static func readVarint(_ ops: [UInt8], _ k: inout Int) -> Int {
        var v = 0
        var shift = 0
        while k < ops.count {
            let b = ops[k]
            k += 1
            v |= Int(b & 0x7F) << shift
            if b & 0x80 == 0 { break }
            shift += 7
        }
        return v
    }
}

/// What parsing found out about a downloaded body that its saved copy can use (`SharedPhoneState.savedBody`).
package enum KnownBody: Sendable {
    /// It has the bytes of this body (the memo's copy of a file many phones download).
    case same([UInt8])
    /// It is this template's body with these changes put in (`PlainXMLTemplate.rebuilt`): a fleet phone's own file
    /// read against the last one's.
    case template([UInt8], changes: [TemplateChange])
}

/// What a fleet's phones share: one reference body per file kind for their saved copies (and the template a phone's
/// own file was read against, once it serves many), and one base for their effective configurations. `vphone boot`
/// shares nothing (one phone has nothing to share with).
public final class SharedPhoneState: Sendable {
    private struct State {
        var references: [FileKind: DeltaReference] = [:]
        /// The last template other than the reference that became one (`templateReference`), without an index.
        var templates: [FileKind: DeltaReference] = [:]
        /// The last template other than the reference that bodies were read against, and how many.
        var candidates: [FileKind: (bytes: [UInt8], reads: Int)] = [:]
        /// Another array with each reference's bytes (the document memo's copy, `KnownBody.same`), once compared.
        var copies: [FileKind: [UInt8]] = [:]
        var base: ParameterTable.Base?
        /// Tables offered before the base was made (`parameters`).
        var unsettled = 0
    }
    private let state = Mutex(State())

    public init() {}

    /// The array a `KnownBody.same` body of `kind` was last found equal to the reference in (tests: the next ones
    /// are matched by storage, not compared).
    func comparedCopy(of kind: FileKind) -> [UInt8]? { state.withLock { $0.copies[kind] } }

    /// The body kept compactly: a delta against the first body of its kind (or the template it was read against),
    /// when that is at most half its size.
    /// - Parameter known: what parsing found out about the body (`PreparedProfile.parsed`): with it, the body is not
    ///   compared with the reference, nor its differences looked for, again.
    package func savedBody(_ bytes: [UInt8], kind: FileKind, known: KnownBody? = nil) -> SavedBody {
        guard bytes.count >= 256 else { return SavedBody(bytes) }
        let (first, copy) = state.withLock { s in
            if let r = s.references[kind] { return (r, s.copies[kind]) }
            let r = DeltaReference(bytes)
            s.references[kind] = r
            return (r, nil)
        }
        var reference = first
        var found: [UInt8]?
        switch known {
        case .same(let other):
            if BodyBytes.identical(other, reference.bytes) || copy.map({ BodyBytes.identical(other, $0) }) == true {
                found = BodyDelta.copyAll(bytes.count)
            } else if BodyBytes.equal(other, reference.bytes) {
                // The memo's copy, compared once: the next phones' bodies found in the memo are this array.
                state.withLock { $0.copies[kind] = other }
                found = BodyDelta.copyAll(bytes.count)
            }
        case .template(let template, let changes):
            if let against = templateReference(template, kind: kind, reference: reference) {
                reference = against
                found = BodyDelta.encode(changes, of: bytes, referenceCount: against.bytes.count)
            }
        case nil:
            break
        }
        // Nothing known that serves: a copy of the reference when the body is its bytes (the product, master and
        // initial files), else its differences, looked for.
        let ops =
            found
            ?? (BodyBytes.equal(bytes, reference.bytes)
                ? BodyDelta.copyAll(bytes.count) : BodyDelta.encode(bytes, against: reference))
        guard ops.count * 2 <= bytes.count else { return SavedBody(bytes) }
        return SavedBody(storage: .delta(reference, ops: ops, count: bytes.count))
    }

    /// How many bodies are read against a template other than the reference before it becomes one.
    static let templateReads = 8

    /// What a body read against `template` is kept against: the kind's reference when the template has its bytes
    /// (the first phone's file, until a file with another layout takes its place); else the template itself, once
    /// `templateReads` bodies were read against it; nil before (the body's differences are then looked for). Each
    /// such template keeps its 8 KB alive: a fleet whose files change layout every few phones would pay that for
    /// every few phones, where a searched delta costs about 1 KB.
    private func templateReference(
        _ template: [UInt8],
        kind: FileKind,
        reference: DeltaReference
    ) -> DeltaReference? {
        if BodyBytes.equal(template, reference.bytes) { return reference }
        return state.withLock { s in
            if let t = s.templates[kind], BodyBytes.identical(t.bytes, template) { return t }
            guard let candidate = s.candidates[kind], BodyBytes.identical(candidate.bytes, template) else {
                s.candidates[kind] = (template, 1)
                return nil
            }
            guard candidate.reads + 1 >= Self.templateReads else {
                s.candidates[kind] = (template, candidate.reads + 1)
                return nil
            }
            let t = DeltaReference(template, indexed: false)
            s.templates[kind] = t
            s.candidates[kind] = nil
            return t
        }
    }

    /// A snapshot read back from a fleet store, kept the way a phone of this fleet keeps what it provisions: its
    /// configuration layered over the fleet's base and its saved files as shared deltas. Every view of it is
    /// unchanged; without this, a phone resumed from `--store` held its table and bodies in full for as long as
    /// its configuration did not change.
    public func sharing(_ snapshot: FlashSnapshot) -> FlashSnapshot {
        var out = snapshot
        // A table read back from the store holds no copy the memo's files share: the base is made from it anyway
        // (a resumed fleet's phones are read back one after another, before any downloads).
        out.parameters = parameters(snapshot.parameters, settled: true)
        for (kind, file) in snapshot.savedFiles {
            guard case .plain(let bytes) = file.savedBody.storage else { continue }
            out.savedFiles[kind]?.savedBody = savedBody(bytes, kind: kind)
        }
        return out
    }

    /// The configuration of the fleet's first settled phone (`parameters`), once there is one.
    var base: ParameterTable.Base? { state.withLock { $0.base } }

    /// How many tables that are not settled are kept flat while waiting for a settled one to make the base from (a
    /// fleet whose files are never shared has none).
    static let unsettledTables = 8

    /// The table kept as its differences from the fleet's base: the configuration of the first phone whose table was
    /// `settled`, or of the first after `unsettledTables` that were not.
    /// - Parameter settled: the table was merged from the shared files as the memo holds them
    ///   (`MergeRun.common`), as every later phone's is: its names and values are the copies theirs hold, so comparing
    ///   them with the base reads no bytes. The first phones parse those files before the memo holds them.
    public func parameters(_ table: ParameterTable, settled: Bool) -> ParameterTable {
        guard table.count >= ParameterTable.minLayeredCount else { return table }
        let base: ParameterTable.Base? = state.withLock { s in
            if let b = s.base { return b }
            guard settled || s.unsettled >= Self.unsettledTables else {
                s.unsettled += 1
                return nil
            }
            let b = table.makeBase()
            s.base = b
            return b
        }
        guard let base else { return table }
        return table.layered(over: base)
    }
}

/// Comparing and hashing file bodies eight bytes at a time (a fleet does it for every download).
enum BodyBytes {
    /// How many leading bytes `a` and `b` have in common.
    static func commonPrefix(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let n = min(a.count, b.count)
        var i = 0
        while i + 8 <= n {
            let x = a.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            let y = b.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            if x != y { return i + (x ^ y).littleEndian.trailingZeroBitCount / 8 }
            i += 8
        }
        while i < n && a[i] == b[i] { i += 1 }
        return i
    }

    /// Whether `a` and `b` are one array's storage (so the same bytes), without reading them.
    static func identical(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in x.baseAddress == y.baseAddress } }
            && a.count == b.count
    }

    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        // The same storage (a fleet's phones mostly hold the shared copies): memcmp would still read it all.
        if identical(a, b) { return true }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in equal(x, y) } }
    }

    /// memcmp: vector compares, several times faster than commonPrefix's word loop on 8 KB bodies, and than a
    /// generic `elementsEqual` on short texts.
    static func equal(_ x: UnsafeRawBufferPointer, _ y: UnsafeRawBufferPointer) -> Bool {
        x.count == y.count && (x.isEmpty || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0)
    }

    /// A fast, non-cryptographic hash of the whole body (callers compare the bytes on a match).
    static func hash(_ body: [UInt8]) -> Int {
        body.withUnsafeBytes { b in
            var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(b.count)
            var i = 0
            while i + 8 <= b.count {
                h = (h ^ b.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
                h ^= h >> 29
                i += 8
            }
            while i < b.count {
                h = (h ^ UInt64(b[i])) &* 0x94D0_49BB_1331_11EB
                i += 1
            }
            return Int(truncatingIfNeeded: h ^ (h >> 32))
        }
    }
}
