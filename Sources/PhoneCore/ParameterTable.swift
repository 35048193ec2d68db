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
        /// `removedBits` marks a name of the base that this table does not have.
        var bits: UInt32
    }

    /// A table many phones' tables are layered over (`layered(over:)`): the configuration they have in common is
    /// kept once, and each phone keeps only where it differs.
    public final class Base: Sendable {
        let entries: ContiguousArray<Entry>
        init(_ entries: ContiguousArray<Entry>) { self.entries = entries }
    }

    /// The entries, sorted by name. With a base, only where this table differs from it: a changed or added entry,
    /// or a removal (`removedBits`) of a base name.
    private(set) var entries: ContiguousArray<Entry>
    private(set) var base: Base?
    public private(set) var count: Int

    static let removedBits: UInt32 = 0xFF

    public init() {
        entries = []
        count = 0
    }

    /// Sorted entries with unique names.
    init(sortedEntries: ContiguousArray<Entry>) {
        entries = sortedEntries
        count = sortedEntries.count
    }

    public init(_ dictionary: [String: Parameter]) {
        var entries = ContiguousArray<Entry>()
        entries.reserveCapacity(dictionary.count)
        for (name, p) in dictionary { entries.append(Self.entry(name: name, p)) }
        entries.sort { $0.name < $1.name }
        self.init(sortedEntries: entries)
    }

    public init(dictionaryLiteral elements: (String, Parameter)...) {
        self.init(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }

    public var isEmpty: Bool { count == 0 }

    /// The names, in order.
    public var keys: [String] { flatEntries.map(\.name) }
    /// The parameters, in name order.
    public var values: [Parameter] { flatEntries.map(Self.parameter) }
    /// The same contents as a dictionary.
    public var dictionary: [String: Parameter] {
        var out: [String: Parameter] = [:]
        out.reserveCapacity(count)
        for e in flatEntries { out[e.name] = Self.parameter(e) }
        return out
    }

    public subscript(name: String) -> Parameter? {
        get { entry(name).map(Self.parameter) }
        set {
            let inBase = base.map { Self.position(of: name, in: $0.entries).found != nil } ?? false
            let had = entry(name) != nil
            switch (Self.position(of: name, in: entries), newValue) {
            case (.found(let i), let p?): entries[i] = Self.entry(name: entries[i].name, p)
            case (.found(let i), nil):
                if inBase {
                    entries[i].bits = Self.removedBits
                } else {
                    entries.remove(at: i)
                }
            case (.insert(let i), let p?): entries.insert(Self.entry(name: ParameterNames.intern(name), p), at: i)
            case (.insert(let i), nil):
                if inBase {
                    entries.insert(Entry(name: ParameterNames.intern(name), value: "", bits: Self.removedBits), at: i)
                }
            }
            count += (newValue != nil ? 1 : 0) - (had ? 1 : 0)
        }
    }

    /// The value alone (no `Parameter` built): the machine's hot lookups.
    public func value(_ name: String) -> String? { entry(name)?.value }

    /// The source alone.
    public func source(_ name: String) -> ParameterSource? { entry(name).map { Self.source($0.bits) } }

    public func makeIterator() -> AnyIterator<Element> {
        var index = 0
        let entries = flatEntries
        return AnyIterator {
            guard index < entries.endIndex else { return nil }
            defer { index += 1 }
            let e = entries[index]
            return (e.name, Self.parameter(e))
        }
    }

    public var underestimatedCount: Int { count }

    public static func == (lhs: ParameterTable, rhs: ParameterTable) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.base === rhs.base { return lhs.entries == rhs.entries }
        return lhs.flatEntries == rhs.flatEntries
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for e in flatEntries { hasher.combine(e) }
    }

    // MARK: - Layers

    /// The same table, kept as its differences from `base` when that is smaller (a fleet's phones share most of
    /// their configuration: the product and master files' values, and every standard value they have in common).
    /// More than half the table of its own: no gain (a phone configured unlike the first one), it stays flat.
    public func layered(over base: Base) -> ParameterTable {
        if self.base === base { return self }
        let flat = flatEntries
        var bySource = [Int](repeating: 0, count: ParameterSource.allCases.count)
        return Self.merged(flat, source: 0, over: [], layeredOver: base, bySource: &bySource)
            ?? ParameterTable(sortedEntries: flat)
    }

    /// Tables smaller than this are kept flat: layering them saves nothing.
    static let minLayeredCount = 32

    /// A base holding this table's contents.
    public func makeBase() -> Base { Base(flatEntries) }

    /// The merge of `strong` over `weak` (a name in both takes `strong`'s value and bits, `source` added, and
    /// `weak`'s copy of the name), kept as its differences from `base` in one walk: the merged table is never made.
    /// nil when more than half of it would be its own (`layered(over:)` keeps such a table flat). `layered(over:)` is
    /// this with nothing under `strong`.
    ///
    /// The walk's course depends on the names alone, so it is kept in `plans` for the next phone whose file has the
    /// same names over the same shared merge and base: that phone's walk compares no names.
    ///
    /// - Parameter bySource: the merged table's entries counted by source index (`ParameterSource.allCases`).
    static func merged(
        _ strong: ContiguousArray<Entry>,
        source: UInt32,
        over weak: ContiguousArray<Entry>,
        layeredOver base: Base,
        plans: MergePlans? = nil,
        bySource: inout [Int]
    ) -> ParameterTable? {
        let steps: [UInt32]
        if let kept = plans?.plan(for: strong, over: weak, base: base) {
            steps = kept
        } else {
            steps = MergePlans.steps(strong, over: weak, base: base)
            plans?.keep(
                MergePlans.Plan(names: ContiguousArray(strong.map(\.name)), weak: weak, base: base, steps: steps)
            )
        }
        var own = ContiguousArray<Entry>()
        // Entries are compared where they lie and copied only into `own`: a copy is a retain and a release of its
        // two strings, and most entries of a fleet phone are the base's.
        strong.withUnsafeBufferPointer { s in
            weak.withUnsafeBufferPointer { w in
                base.entries.withUnsafeBufferPointer { b in
                    var i = 0
                    var j = 0
                    var k = 0
                    for step in steps {
                        for _ in 0..<(step >> MergePlans.removedShift) {
                            own.append(Entry(name: b[k].name, value: "", bits: Self.removedBits))
                            k += 1
                        }
                        let from = step & MergePlans.fromMask
                        let fromWeak = from == MergePlans.fromWeak
                        let bits = fromWeak ? w[j].bits : s[i].bits | source
                        bySource[Int(bits & 0xFF)] += 1
                        if step & MergePlans.inBase != 0 {
                            // The plan put the base's entry of the same name here.
                            // Compared where they lie: a `fromWeak ? … : …` of the two values made a copy of one,
                            // a retain and a release for every name of the phone.
                            let same: Bool
                            if bits != b[k].bits {
                                same = false
                            } else if fromWeak {
                                same = w[j].value == b[k].value
                            } else {
                                same = s[i].value == b[k].value
                            }
                            if !same {
                                own.append(
                                    Entry(name: b[k].name, value: fromWeak ? w[j].value : s[i].value, bits: bits)
                                )
                            }
                            k += 1
                        } else if fromWeak {
                            own.append(w[j])
                        } else {
                            // A name in both takes the weak file's copy of it (the fleet's, when that file is shared).
                            let name = from == MergePlans.fromBoth ? w[j].name : s[i].name
                            own.append(Entry(name: name, value: s[i].value, bits: bits))
                        }
                        if from != MergePlans.fromWeak { i += 1 }
                        if from != MergePlans.fromStrong { j += 1 }
                    }
                    while k < b.count {
                        own.append(Entry(name: b[k].name, value: "", bits: Self.removedBits))
                        k += 1
                    }
                }
            }
        }
        let count = steps.count
        guard own.count <= count / 2 else { return nil }
        var out = ParameterTable(sortedEntries: own)
        out.base = base
        out.count = count
        return out
    }

    /// Every entry, in name order, with the base folded in.
    var flatEntries: ContiguousArray<Entry> {
        guard let base else { return entries }
        let shared = base.entries
        var out = ContiguousArray<Entry>()
        out.reserveCapacity(count)
        var i = 0
        var j = 0
        while i < entries.count || j < shared.count {
            if j == shared.count || (i < entries.count && entries[i].name < shared[j].name) {
                if entries[i].bits != Self.removedBits { out.append(entries[i]) }
                i += 1
            } else if i == entries.count || shared[j].name < entries[i].name {
                out.append(shared[j])
                j += 1
            } else {
                if entries[i].bits != Self.removedBits { out.append(entries[i]) }
                i += 1
                j += 1
            }
        }
        return out
    }

    // MARK: - Entries

    enum Position {
        case found(Int)
        case insert(Int)

        var found: Int? {
            if case .found(let i) = self { return i }
            return nil
        }
    }

    /// The position in `entries` (a table without a base: the merge's fresh tables).
    func position(of name: String) -> Position { Self.position(of: name, in: entries) }

    static func position(of name: String, in entries: ContiguousArray<Entry>) -> Position {
        // The first name not below `name`, then one equality test: one comparison a step instead of two (the
        // machine's lookups by name, a dozen a phone, were half string comparisons).
        entries.withUnsafeBufferPointer { e in
            var low = 0
            var high = e.count
            while low < high {
                let mid = (low + high) / 2
                if e[mid].name < name { low = mid + 1 } else { high = mid }
            }
            return low < e.count && e[low].name == name ? .found(low) : .insert(low)
        }
    }

    private func entry(_ name: String) -> Entry? {
        if case .found(let i) = Self.position(of: name, in: entries) {
            return entries[i].bits == Self.removedBits ? nil : entries[i]
        }
        guard let base, case .found(let i) = Self.position(of: name, in: base.entries) else { return nil }
        return base.entries[i]
    }

    static func entry(name: String, _ p: Parameter) -> Entry {
        Entry(name: name, value: p.value, bits: bits(source: p.source, perm: p.perm, access: p.access))
    }

    static func bits(source: ParameterSource, perm: String, access: String) -> UInt32 {
        UInt32(source.caseNumber) | (ParameterAttributes.number(perm: perm, access: access) << 8)
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

/// The course of `ParameterTable.merged` for the last names it walked: a fleet's phones have one template's names, one
/// shared merge and one base, so every phone after the first walks without comparing a name.
final class MergePlans: Sendable {
    /// One step per entry of the merged table: where it comes from (`fromMask`), whether the base has its name
    /// (`inBase`), and how many base names before it the merged table lacks (from `removedShift` up).
    struct Plan: Sendable {
        var names: ContiguousArray<String>
        /// Kept for its identity: the same storage is the same entries.
        var weak: ContiguousArray<ParameterTable.Entry>
        var base: ParameterTable.Base
        var steps: [UInt32]
    }
    static let fromMask: UInt32 = 0b11
    static let fromStrong: UInt32 = 0
    static let fromWeak: UInt32 = 1
    static let fromBoth: UInt32 = 2
    static let inBase: UInt32 = 0b100
    static let removedShift: UInt32 = 3

    private let last = Mutex<Plan?>(nil)
    /// Walks that followed the kept plan (for tests).
    let reused = Atomic<Int>(0)

    init() {}

    /// The kept steps, when `strong` has the kept names and `weak` and `base` are the kept ones.
    func plan(
        for strong: ContiguousArray<ParameterTable.Entry>,
        over weak: ContiguousArray<ParameterTable.Entry>,
        base: ParameterTable.Base
    ) -> [UInt32]? {
        guard let plan = last.withLock({ $0 }), plan.base === base, plan.names.count == strong.count,
            plan.weak.count == weak.count,
            plan.weak.withUnsafeBufferPointer({ a in
                weak.withUnsafeBufferPointer { b in a.baseAddress == b.baseAddress }
            })
        else { return nil }
        // The same name objects (a template's) compare by identity: no bytes are read.
        for index in strong.indices where strong[index].name != plan.names[index] { return nil }
        reused.add(1, ordering: .relaxed)
        return plan.steps
    }

    func keep(_ plan: Plan) { last.withLock { $0 = plan } }

    /// The steps of the merge of `strong` over `weak`, walked against `base` by comparing names.
    static func steps(
        _ strong: ContiguousArray<ParameterTable.Entry>,
        over weak: ContiguousArray<ParameterTable.Entry>,
        base: ParameterTable.Base
    ) -> [UInt32] {
        let shared = base.entries
        var steps: [UInt32] = []
        steps.reserveCapacity(strong.count + weak.count)
        var i = 0
        var j = 0
        var k = 0
        while i < strong.count || j < weak.count {
            let name: String
            var step: UInt32
            if j == weak.count || (i < strong.count && strong[i].name < weak[j].name) {
                name = strong[i].name
                step = fromStrong
                i += 1
            } else if i == strong.count || weak[j].name < strong[i].name {
                name = weak[j].name
                step = fromWeak
                j += 1
            } else {
                name = weak[j].name
                step = fromBoth
                i += 1
                j += 1
            }
            // Against the base: its names before this one are removed; this one is compared with its, or added.
            var removed: UInt32 = 0
            while k < shared.count && shared[k].name < name {
                removed += 1
                k += 1
            }
            if k < shared.count && shared[k].name == name {
                step |= inBase
                k += 1
            }
            steps.append(step | removed << removedShift)
        }
        return steps
    }
}
