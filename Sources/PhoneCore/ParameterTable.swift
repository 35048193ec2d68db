import Synchronization

/// A phone's effective configuration: every non-factory value with its source and attributes, by name.
///
/// It reads like the `[String: Parameter]` it replaces (`table["SIP_AUTHID_1"]`, `for (name, p) in table`, `[:]`),
/// but it is one sorted array of 40-byte entries instead of a hash table of 4-string values: a fleet keeps one per
/// phone, and 465 parameters took about 90 KB as a dictionary and take about 19 KB here. Long names are shared
/// fleet-wide (`ParameterNames`), `perm`/`access` pairs are numbered fleet-wide, and values share the storage of
/// the parsed document they came from (which a fleet shares between phones for the same file). Iteration is in
/// name order. Lookups are binary searches; changing one entry is O(n), which suits local edits.
///
/// ```swift
/// var table: ParameterTable = [:]
/// table["NTP_ADDR"] = Parameter(name: "NTP_ADDR", value: "pool.ntp.org", source: .master)
/// table["NTP_ADDR"]?.value   // "pool.ntp.org"
/// ```
public struct ParameterTable: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Element = (key: String, value: Parameter)

    struct Entry: Sendable, Hashable {
        var name: String
        var value: String
        /// The source's index in `ParameterSource.allCases` (low 8 bits) and the attribute pair's number (the rest).
        var bits: UInt32
    }

    private(set) var entries: ContiguousArray<Entry>

    public init() { entries = [] }

    /// Sorted entries with unique names.
    init(sortedEntries: ContiguousArray<Entry>) { entries = sortedEntries }

    public init(_ dictionary: [String: Parameter]) {
        var entries = ContiguousArray<Entry>()
        entries.reserveCapacity(dictionary.count)
        for (name, p) in dictionary { entries.append(Self.entry(name: name, p)) }
        entries.sort { $0.name < $1.name }
        self.entries = entries
    }

    public init(dictionaryLiteral elements: (String, Parameter)...) {
        self.init(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    /// The names, in order.
    public var keys: [String] { entries.map(\.name) }
    /// The parameters, in name order.
    public var values: [Parameter] { entries.map(Self.parameter) }
    /// The same contents as a dictionary.
    public var dictionary: [String: Parameter] {
        var out: [String: Parameter] = [:]
        out.reserveCapacity(entries.count)
        for e in entries { out[e.name] = Self.parameter(e) }
        return out
    }

    public subscript(name: String) -> Parameter? {
        get {
            guard case .found(let i) = position(of: name) else { return nil }
            return Self.parameter(entries[i])
        }
        set {
            switch (position(of: name), newValue) {
            case (.found(let i), let p?): entries[i] = Self.entry(name: entries[i].name, p)
            case (.found(let i), nil): entries.remove(at: i)
            case (.insert(let i), let p?): entries.insert(Self.entry(name: ParameterNames.intern(name), p), at: i)
            case (.insert, nil): break
            }
        }
    }

    /// The value alone (no `Parameter` built): the machine's hot lookups.
    public func value(_ name: String) -> String? {
        guard case .found(let i) = position(of: name) else { return nil }
        return entries[i].value
    }

    /// The source alone.
    public func source(_ name: String) -> ParameterSource? {
        guard case .found(let i) = position(of: name) else { return nil }
        return Self.source(entries[i].bits)
    }

    public func makeIterator() -> AnyIterator<Element> {
        var index = entries.startIndex
        let entries = self.entries
        return AnyIterator {
            guard index < entries.endIndex else { return nil }
            defer { index += 1 }
            let e = entries[index]
            return (e.name, Self.parameter(e))
        }
    }

    public var underestimatedCount: Int { entries.count }

    // MARK: - Entries

    enum Position {
        case found(Int)
        case insert(Int)
    }

    func position(of name: String) -> Position {
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            let n = entries[mid].name
            if n == name { return .found(mid) }
            if n < name { low = mid + 1 } else { high = mid }
        }
        return .insert(low)
    }

    static func entry(name: String, _ p: Parameter) -> Entry {
        Entry(name: name, value: p.value, bits: bits(source: p.source, perm: p.perm, access: p.access))
    }

    static func bits(source: ParameterSource, perm: String, access: String) -> UInt32 {
        UInt32(sourceIndex(source)) | (ParameterAttributes.number(perm: perm, access: access) << 8)
    }

    static func sourceIndex(_ source: ParameterSource) -> UInt8 {
        switch source {
        case .factory: return 0
        case .initial: return 1
        case .master: return 2
        case .product: return 3
        case .standard: return 4
        case .local: return 5
        }
    }

    static func source(_ bits: UInt32) -> ParameterSource {
        let all = ParameterSource.allCases
        let i = Int(bits & 0xFF)
        return i < all.count ? all[i] : .factory
    }

    static func parameter(_ e: Entry) -> Parameter {
        let (perm, access) = ParameterAttributes.pair(e.bits >> 8)
        return Parameter(name: e.name, value: e.value, source: source(e.bits), perm: perm, access: access)
    }
}

extension ParameterTable: CustomStringConvertible {
    public var description: String { dictionary.description }
}

extension ParameterTable {
    public static func == (lhs: ParameterTable, rhs: [String: Parameter]) -> Bool { lhs == ParameterTable(rhs) }
}

/// Parameter names longer than a small string (15 UTF-8 bytes), one copy for the whole process: every phone of a
/// fleet has the same few hundred names, and each phone's parse of its own standard file makes new copies of them.
public enum ParameterNames {
    private static let table = Mutex(Set<String>())
    /// Names kept at most: files from a hostile server cannot grow the table without bound.
    static let limit = 100_000

    /// The shared copy of `name` (itself when it is short, new, or the table is full).
    public static func intern(_ name: String) -> String {
        guard name.utf8.count > 15 else { return name }
        return table.withLock { set in
            if let i = set.firstIndex(of: name) { return set[i] }
            if set.count < limit { set.insert(name) }
            return name
        }
    }
}

/// The `perm`/`access` pairs met so far, numbered: an entry keeps a number instead of two strings. Number 0 is the
/// pair of empty strings (most parameters), answered without a lock.
enum ParameterAttributes {
    private struct State {
        var numbers: [Pair: UInt32] = [:]
        var pairs: [Pair] = [Pair(perm: "", access: "")]
    }
    private struct Pair: Hashable {
        var perm: String
        var access: String
    }
    private static let state = Mutex(State())
    /// 24 bits of the entry's `bits`.
    static let limit = 1 << 24

    static func number(perm: String, access: String) -> UInt32 {
        if perm.isEmpty && access.isEmpty { return 0 }
        let pair = Pair(perm: perm, access: access)
        return state.withLock { s in
            if let n = s.numbers[pair] { return n }
            // Files are capped in size, so 16 million distinct pairs cannot arrive; stop numbering if they did.
            precondition(s.pairs.count < limit, "more than \(limit) distinct perm/access pairs")
            let n = UInt32(s.pairs.count)
            s.pairs.append(pair)
            s.numbers[pair] = n
            return n
        }
    }

    static func pair(_ number: UInt32) -> (perm: String, access: String) {
        if number == 0 { return ("", "") }
        return state.withLock { s in
            let p = s.pairs[Int(number)]
            return (p.perm, p.access)
        }
    }
}
