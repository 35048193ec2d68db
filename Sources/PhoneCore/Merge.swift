import ConfigFormats
import Synchronization

/// One file's contribution to a merge: its parsed document, and whether it was downloaded in this cycle.
public struct MergeInput: Sendable {
    public var kind: FileKind
    /// The parsed file. In a fleet, a phone's own file with the last phone's names has no document made: this is
    /// then empty and `run` stands for it (`MergeRun.standsForDocument`), so read its values with `value(_:)`.
    public var document: ConfigDocument
    /// True when downloaded in this cycle; false when a saved copy stands in for it (spec §6).
    public var fresh: Bool
    /// The document's entries sorted by name, when made beforehand: for a file the fleet shares, or for a phone's own
    /// file read in file order (nil: the merge sorts them itself).
    var run: MergeRun?

    public init(kind: FileKind, document: ConfigDocument, fresh: Bool) {
        self.kind = kind
        self.document = document
        self.fresh = fresh
    }

    init(kind: FileKind, document: ConfigDocument, fresh: Bool, run: MergeRun?) {
        self.init(kind: kind, document: document, fresh: fresh)
        self.run = run
    }

    /// The value the file sets for `name`, from its run when the run stands for the document (such a file has no
    /// `<Initial>` part). `initialToo`: also a parameter under `<Initial>`.
    func value(_ name: String, initialToo: Bool = true) -> String? {
        if let run, run.standsForDocument { return run.value(name) }
        return (document.device[name] ?? (initialToo ? document.initial[name] : nil))?.value
    }

    /// `value(parameter.name)`: kept in a run the fleet shares, looked up otherwise.
    func value(_ parameter: CycleParameter) -> String? {
        if let run, let values = run.cycleValues { return values[parameter.rawValue] }
        return value(parameter.name)
    }

    /// How many parameters the file sets.
    var parameterCount: Int {
        if let run, run.standsForDocument { return run.device.count }
        return document.device.count + document.initial.count
    }
}

/// The parameters a cycle reads for every fetch (its User-Agent, credentials, proxy) and for an encrypted file:
/// a file the fleet shares keeps their values by number (`MergeRun.cycleValues`), so the fleet's phones do not look
/// them up by name in each such file for each fetch.
enum CycleParameter: Int, CaseIterable, Sendable {
    case userAgent, authID, authPassword, provisioningAuthID, provisioningAuthPassword
    case proxyEnabled, proxyAddress, proxyPort, fileKeyLength

    var name: String {
        switch self {
        case .userAgent: return "HTTP_USER_AGENT"
        case .authID: return "HTTP_AUTH_ID"
        case .authPassword: return "HTTP_AUTH_PASSWORD"
        case .provisioningAuthID: return "USR_PROV_SVR_AUTH_ID"
        case .provisioningAuthPassword: return "USR_PROV_SVR_AUTH_PASSWORD"
        case .proxyEnabled: return "HTTP_ENABLE_PROXY"
        case .proxyAddress: return "HTTP_PROXY_SVR_ADDR"
        case .proxyPort: return "HTTP_PROXY_SVR_PORT"
        case .fileKeyLength: return "CFG_FILE_KEY_LENGTH"
        }
    }
}

/// A document's entries sorted by name, as the merge reads them: made once for a document many phones share, or
/// for a phone's own file when it is parsed.
final class MergeRun: Sendable {
    /// `bits` holds the attribute pair's number; the merge adds the source.
    let device: ContiguousArray<ParameterTable.Entry>
    let initial: ContiguousArray<ParameterTable.Entry>
    /// The run of a document many phones share (product, master, initial file): the memo keeps its merge.
    let common: Bool
    /// The only copy of the file's parameters: the document beside it was not made (a fleet phone's own file with the
    /// last one's names), so its values are looked up here (`value(_:)`).
    let standsForDocument: Bool
    /// For a `common` run, the document's value (`MergeInput.value(_:)`) of each `CycleParameter`, by its number.
    let cycleValues: [String?]?

    init(
        device: ContiguousArray<ParameterTable.Entry>,
        initial: ContiguousArray<ParameterTable.Entry>,
        standsForDocument: Bool = false
    ) {
        self.device = device
        self.initial = initial
        common = false
        self.standsForDocument = standsForDocument
        cycleValues = nil
    }

    /// - Parameters:
    ///   - interned: intern the names (the run, or its names, are kept for many phones).
    ///   - common: the document is one many phones share (`common`).
    init(_ document: ConfigDocument, interned: Bool, common: Bool) {
        func sorted(_ entries: [String: ConfigEntry]) -> ContiguousArray<ParameterTable.Entry> {
            var out = ContiguousArray<ParameterTable.Entry>()
            out.reserveCapacity(entries.count)
            for (name, e) in entries {
                out.append(Self.entry(interned ? ParameterNames.intern(name) : name, e))
            }
            out.sort { $0.name < $1.name }
            return out
        }
        device = sorted(document.device)
        initial = sorted(document.initial)
        self.common = common
        standsForDocument = false
        cycleValues =
            common
            ? CycleParameter.allCases.map { (document.device[$0.name] ?? document.initial[$0.name])?.value } : nil
    }

    /// The value of a device parameter, by binary search of the name-sorted run.
    func value(_ name: String) -> String? {
        var low = 0
        var high = device.count
        while low < high {
            let mid = (low + high) / 2
            if device[mid].name < name { low = mid + 1 } else { high = mid }
        }
        return low < device.count && device[low].name == name ? device[low].value : nil
    }

    /// A file's entry as a run holds it: `bits` carries the perm/access pair's number (the merge adds the source).
    static func entry(_ name: String, _ e: ConfigEntry) -> ParameterTable.Entry {
        ParameterTable.Entry(name: name, value: e.value, bits: bits(e))
    }

    /// An entry's `bits` in a run: its perm/access pair's number (the merge adds the source).
    static func bits(_ e: ConfigEntry) -> UInt32 { ParameterAttributes.number(perm: e.perm, access: e.access) << 8 }
}

/// The merge of the files many phones share (product, master, initial), kept for the next phone with the same ones.
public final class MergeMemo: Sendable {
    fileprivate struct Key: Hashable {
        var first: Int
        var layers: [ObjectIdentifier]
        var sources: [UInt8]
    }
    fileprivate struct Value: Sendable {
        var runs: [MergeRun]  // keeps the identifiers of the key alive
        var merged: Merge.Layered
    }
    private let last = Mutex<(Key, Value)?>(nil)
    /// The names of the last phone's own file: a fleet's standard files come from one template.
    private let ownOrder = Mutex<OwnOrder?>(nil)

    private struct OwnOrder: Sendable {
        /// The names in file order; empty when the file was not read in file order (libxml2, Standard Format).
        var names: [String]
        /// For each position in name order, the file-order index (-1 when not known), and the name (the shared copy).
        var sorted: [(index: Int, name: String)]
        /// The file as the scanner read it (every name once, none under `<Initial>`): the next file from the same
        /// template is read against it.
        var template: OwnTemplate?
    }

    /// A phone's own file kept as a template for the next phone's (`ownTemplate`, `ownRun(values:of:)`).
    struct OwnTemplate: Sendable {
        let xml: PlainXMLTemplate
        /// The file's perm/access numbers in file order (`MergeRun.bits`).
        fileprivate let bits: [UInt32]
        /// Names in name order with their file-order indexes: the memo's `sorted` when the template was kept.
        fileprivate let sorted: [(index: Int, name: String)]

        /// nil when the file cannot serve as a template (`ScannedEntries.template`).
        fileprivate init?(_ scanned: ScannedEntries, sorted: [(index: Int, name: String)]) {
            guard let xml = scanned.template else { return nil }
            self.xml = xml
            bits = scanned.entries.map(MergeRun.bits)
            self.sorted = sorted
        }
    }

    public init() {}

    /// The run of a phone's own file: in the order of the last one when it has the same names (no sort, and the
    /// names are the shared copies), else sorted, and its names kept for the next phone.
    func ownRun(_ document: ConfigDocument) -> MergeRun {
        if document.initial.isEmpty, let last = ownOrder.withLock({ $0 }), last.sorted.count == document.device.count {
            var entries = ContiguousArray<ParameterTable.Entry>()
            entries.reserveCapacity(last.sorted.count)
            for (_, name) in last.sorted {
                guard let e = document.device[name] else { break }
                entries.append(MergeRun.entry(name, e))
            }
            if entries.count == last.sorted.count { return MergeRun(device: entries, initial: []) }
        }
        let run = MergeRun(document, interned: true, common: false)
        if document.initial.isEmpty {
            ownOrder.withLock {
                $0 = OwnOrder(names: [], sorted: run.device.map { (index: -1, name: $0.name) }, template: nil)
            }
        }
        return run
    }

    /// The run of a phone's own file from its entries in file order, when the names are those of the last phone's
    /// file (`ownRun(fileOrder:)`), in the same order and all device parameters: the entries go where that file's
    /// went (one string comparison per name, no hashing, no sort). The names being the last file's, none is set
    /// twice, so the file's document is these entries by name: the run stands for it (`standsForDocument`).
    /// The file becomes the template for the next phone's (its layout differed from the one kept).
    func ownRun(sameNamesAs scanned: ScannedEntries) -> MergeRun? {
        let entries = scanned.entries
        guard let last = ownOrder.withLock({ $0 }), last.names.count == entries.count,
            last.sorted.count == entries.count,
            zip(last.names, entries).allSatisfy({ $0 == $1.name && $1.section == .device })
        else { return nil }
        var out = ContiguousArray<ParameterTable.Entry>()
        out.reserveCapacity(entries.count)
        for (index, name) in last.sorted { out.append(MergeRun.entry(name, entries[index])) }
        let template = OwnTemplate(scanned, sorted: last.sorted)
        ownOrder.withLock { $0?.template = template }
        return MergeRun(device: out, initial: [], standsForDocument: true)
    }

    /// The last phone's own file as a template, when it was plain XML with every name once and none under `<Initial>`.
    func ownTemplate() -> OwnTemplate? { ownOrder.withLock { $0?.template } }

    /// The run of a phone's own file that is `template`'s file with other texts: `values` in file order
    /// (`ConfigParser.values(_:like:file:accepting:limits:)`). It stands for the file's document, as in
    /// `ownRun(sameNamesAs:)`.
    func ownRun(values: [String], of template: OwnTemplate) -> MergeRun {
        var out = ContiguousArray<ParameterTable.Entry>()
        out.reserveCapacity(template.sorted.count)
        for (index, name) in template.sorted {
            out.append(ParameterTable.Entry(name: name, value: values[index], bits: template.bits[index]))
        }
        return MergeRun(device: out, initial: [], standsForDocument: true)
    }

    /// The run of a phone's own file from its entries in file order (every name once, no `<Initial>` part), sorted
    /// by name; its names and their order are kept for the next phone's file (`ownRun(sameNamesAs:)`).
    func ownRun(fileOrder scanned: ScannedEntries) -> MergeRun {
        let entries = scanned.entries
        var out = ContiguousArray<ParameterTable.Entry>()
        out.reserveCapacity(entries.count)
        let sorted = entries.indices.sorted { entries[$0].name < entries[$1].name }
            .map { (index: $0, name: ParameterNames.intern(entries[$0].name)) }
        for (index, name) in sorted { out.append(MergeRun.entry(name, entries[index])) }
        let own = OwnOrder(names: entries.map(\.name), sorted: sorted, template: OwnTemplate(scanned, sorted: sorted))
        ownOrder.withLock { $0 = own }
        return MergeRun(device: out, initial: [])
    }

    fileprivate func lookup(_ key: Key) -> Merge.Layered? {
        let found = last.withLock { l in l.flatMap { $0.0 == key ? $0.1.merged : nil } }
        if found != nil { hits.add(1, ordering: .relaxed) }
        return found
    }

    /// Merges of the shared files found here instead of made again (for tests).
    let hits = Atomic<Int>(0)

    /// The course of the last merge of a phone's own file over the shared ones (`ParameterTable.merged`).
    let plans = MergePlans()

    fileprivate func store(_ key: Key, _ value: Value) { last.withLock { $0 = (key, value) } }
}

/// The result of merging a cycle's files with the local edits.
public struct MergeResult: Hashable, Sendable {
    /// Every non-factory effective value, with its source.
    public var parameters: ParameterTable
    /// Local edits overwritten by a provisioned value with `perm` containing `!` (they are removed from flash).
    public var overriddenLocalEdits: [Parameter]
    /// Local edits that stay in force against a provisioned value.
    public var keptLocalEdits: [String]
    /// How many effective values each source gave.
    public var countBySource: [ParameterSource: Int]
    /// Parameters that more than one file set: the sources that lost to the winner, strongest first (empty unless
    /// asked for: it is for debug events).
    public var shadowed: [String: [ParameterSource]] = [:]
}

/// Panasonic's precedence rules (spec §4), as one pure function.
public enum Merge {
    /// Entries sorted by name, each with the layer (file section, strongest first) it came from.
    fileprivate struct Layered: Sendable {
        var entries = ContiguousArray<ParameterTable.Entry>()
        var layers: [UInt16] = []
    }

    /// Merges provisioned files and local edits into the effective configuration.
    ///
    /// Across files a later file never overrides an earlier one: standard > product > master > the initial file's own
    /// parameters > factory default. Local edits beat all provisioned values, unless the winning provisioned value
    /// carries `perm` with `!` and was downloaded in this cycle (or `overrideFromSavedCopy` is set).
    ///
    /// - Parameters:
    ///   - recordShadowed: fill `shadowed` (which file lost where several set a value), for debug events.
    ///   - memo: where the merge of the files a fleet shares is kept from one phone to the next.
    ///   - base: the fleet's base configuration (`SharedPhoneState.base`): the result's table is then kept over it
    ///     as `SharedPhoneState.parameters` would keep it, when the merge of the fleet's files is kept in `memo`.
    public static func effective(
        files: [MergeInput],
        localEdits: [String: LocalEdit],
        overrideFromSavedCopy: Bool = false,
        recordShadowed: Bool = true,
        memo: MergeMemo? = nil,
        base: ParameterTable.Base? = nil
    ) -> MergeResult {
        // The layers, strongest first: each file's entries sorted by name (the initial file's <Initial> section,
        // CfgFiles and Certs, is part of the phone's settings too, after its device section).
        // `common`: the run, when the fleet shares it (the merge of those layers is kept).
        var layers: [(entries: ContiguousArray<ParameterTable.Entry>, source: UInt8, input: Int, common: MergeRun?)] =
            []
        for kind in [FileKind.standard, .product, .master, .initial] {
            for (index, input) in files.enumerated() where input.kind == kind {
                let run =
                    input.run ?? (input.kind == .standard ? memo?.ownRun(input.document) : nil)
                    ?? MergeRun(input.document, interned: false, common: false)
                let source = ParameterSource(kind).caseNumber
                let common = run.common ? run : nil
                layers.append((run.device, source, index, common))
                if kind == .initial { layers.append((run.initial, source, index, common)) }
            }
        }
        func single(_ l: Int) -> Layered {
            var out = Layered()
            out.entries = layers[l].entries
            let source = UInt32(layers[l].source)
            for i in out.entries.indices { out.entries[i].bits |= source }
            out.layers = [UInt16](repeating: UInt16(l), count: out.entries.count)
            return out
        }
        var shadowed: [String: [ParameterSource]] = [:]
        // The layers every phone of a fleet shares come last (product, master, initial): their merge is kept.
        var firstShared = layers.count
        if !recordShadowed, memo != nil {
            while firstShared > 0 && layers[firstShared - 1].common != nil { firstShared -= 1 }
        }
        var merged = Layered()
        if let memo, layers.count - firstShared >= 2 {
            let key = MergeMemo.Key(
                first: firstShared,
                layers: layers[firstShared...].map { l in ObjectIdentifier(l.common!) },
                sources: layers[firstShared...].map(\.source)
            )
            if let kept = memo.lookup(key) {
                merged = kept
            } else {
                merged = single(firstShared)
                for l in (firstShared + 1)..<layers.count {
                    merged = combine(merged, single(l), record: false, shadowed: &shadowed)
                }
                memo.store(key, MergeMemo.Value(runs: layers[firstShared...].compactMap(\.common), merged: merged))
            }
            // A fleet phone's own file over the shared ones, no local edit: merged and layered over the fleet's base
            // in one walk.
            var bySource = [Int](repeating: 0, count: ParameterSource.allCases.count)
            if firstShared == 1, localEdits.isEmpty, let base,
                let table = ParameterTable.merged(
                    layers[0].entries,
                    source: UInt32(layers[0].source),
                    over: merged.entries,
                    layeredOver: base,
                    plans: memo.plans,
                    bySource: &bySource
                ), table.count >= ParameterTable.minLayeredCount  // as `SharedPhoneState.parameters` keeps it
            {
                return MergeResult(
                    parameters: table,
                    overriddenLocalEdits: [],
                    keptLocalEdits: [],
                    countBySource: countBySource(bySource),
                    shadowed: shadowed
                )
            }
            // The phone's own layers, weakest first, each over what is merged so far.
            for l in stride(from: firstShared - 1, through: 0, by: -1) {
                merged = combine(single(l), merged, record: false, shadowed: &shadowed)
            }
        } else if !layers.isEmpty {
            // Strongest first, so that every loser is compared with the winner and noted in order.
            merged = single(0)
            for l in 1..<layers.count {
                merged = combine(merged, single(l), record: recordShadowed, shadowed: &shadowed)
            }
        }
        var params = ParameterTable(sortedEntries: merged.entries)
        var overridden: [Parameter] = []
        var kept: [String] = []
        var applied: [Parameter] = []
        // Decided on the provisioned table (positions match `merged.layers`), applied after.
        for (name, edit) in localEdits.sorted(by: { $0.key < $1.key }) {
            if case .found(let i) = params.position(of: name) {
                let p = ParameterTable.parameter(params.entries[i])
                let input = layers[Int(merged.layers[i])].input
                if Perm(p.perm).overridesLocalEdit, files[input].fresh || overrideFromSavedCopy {
                    overridden.append(Parameter(name: name, value: edit.value, source: .local))
                    continue
                }
                kept.append(name)
            }
            applied.append(Parameter(name: name, value: edit.value, source: .local))
        }
        for p in applied { params[p.name] = p }
        var bySource = [Int](repeating: 0, count: ParameterSource.allCases.count)
        for e in params.entries { bySource[Int(e.bits & 0xFF)] += 1 }
        return MergeResult(
            parameters: params,
            overriddenLocalEdits: overridden,
            keptLocalEdits: kept,
            countBySource: countBySource(bySource),
            shadowed: shadowed
        )
    }

    /// `MergeResult.countBySource` from counts by source index.
    private static func countBySource(_ bySource: [Int]) -> [ParameterSource: Int] {
        var counts: [ParameterSource: Int] = [:]
        for (i, source) in ParameterSource.allCases.enumerated() where bySource[i] > 0 { counts[source] = bySource[i] }
        return counts
    }

    /// `strong` over `weak`: a name `strong` has is never overridden by `weak` (whose copy of the name, shared by
    /// the fleet when `weak` is, is kept). With `record`, each loser whose source differs from the winner's is noted.
    private static func combine(
        _ strong: Layered,
        _ weak: Layered,
        record: Bool,
        shadowed: inout [String: [ParameterSource]]
    ) -> Layered {
        if weak.entries.isEmpty { return strong }
        if strong.entries.isEmpty { return weak }
        var out = Layered()
        out.entries.reserveCapacity(strong.entries.count + weak.entries.count)
        out.layers.reserveCapacity(strong.entries.count + weak.entries.count)
        let a = strong.entries
        let b = weak.entries
        var i = 0
        var j = 0
        while i < a.count && j < b.count {
            if a[i].name == b[j].name {
                var e = a[i]
                e.name = b[j].name
                if record, a[i].bits & 0xFF != b[j].bits & 0xFF {
                    shadowed[e.name, default: []].append(ParameterTable.source(b[j].bits))
                }
                out.entries.append(e)
                out.layers.append(strong.layers[i])
                i += 1
                j += 1
            } else if a[i].name < b[j].name {
                out.entries.append(a[i])
                out.layers.append(strong.layers[i])
                i += 1
            } else {
                out.entries.append(b[j])
                out.layers.append(weak.layers[j])
                j += 1
            }
        }
        while i < a.count {
            out.entries.append(a[i])
            out.layers.append(strong.layers[i])
            i += 1
        }
        while j < b.count {
            out.entries.append(b[j])
            out.layers.append(weak.layers[j])
            j += 1
        }
        return out
    }
}

// MARK: - Local edits

/// Why a local edit was refused.
public struct LocalEditRefusal: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case unknownParameter = "unknown_parameter"
        case readOnly = "read_only"
        /// A value the phone would refuse or replace by a default (`ValueForm`).
        case invalidValue = "invalid_value"
    }
    public var kind: Kind
    public var name: String
    public var message: String
    public var description: String { message }
}

public enum LocalEditRule {
    /// Checks and records a local edit, as the phone's web UI does (spec §4: `R` refuses local edits).
    ///
    /// - Returns: the flash changes (the edit, the new effective value, an event).
    /// - Throws: `LocalEditRefusal` for a parameter the phone does not know, one provisioned read-only, or a value
    ///   the phone would not use (`ValueForm`: a timer, a switch, a URL it downloads from).
    public static func apply(
        name: String,
        value: String,
        snapshot: FlashSnapshot,
        profile: DeviceProfile,
        at now: PhoneTime
    ) throws(LocalEditRefusal) -> FlashChanges {
        let current = snapshot.parameters[name]
        if let refusal = refusal(name: name, value: value, over: current, snapshot: snapshot, profile: profile) {
            throw refusal
        }
        var changes = FlashChanges()
        changes.setLocalEdits = [LocalEdit(name: name, value: value, editedAt: now)]
        var params = snapshot.parameters
        params[name] = Parameter(name: name, value: value, source: .local)
        changes.parameters = params
        // The event log is never a place for secrets: a secret's value, or a URL's credentials, are masked.
        let shown = profile.isSecret(name) ? "********" : redactURL(value)
        changes.events = [
            LogEntry(
                at: now,
                boot: snapshot.bootCount,
                kind: "local-edit",
                message: "local edit: \(name) = \"\(shown)\"",
                fields: ["parameter": name, "previous_source": current?.source.rawValue ?? "factory"]
            )
        ]
        return changes
    }

    /// The local edits in `snapshot` that `apply` would refuse, by name: for checking an image made elsewhere
    /// (`vphone flash import`), where the edits are kept as they are.
    ///
    /// Each edit is judged as `apply` would judge it on the image as provisioned. The image's table holds an edit in
    /// force as a `local` entry, which stands for the value under it; that value is read from the image's saved
    /// files (the copies the phone merges), strongest first, so a name a file provisions is known even when the
    /// profile lacks it, and a file's `perm` still counts. A secret's value is never in a refusal's message (it is
    /// shown as `********`).
    ///
    /// ```swift
    /// for refusal in LocalEditRule.problems(in: export.snapshot, profile: profile) { print(refusal.message) }
    /// ```
    public static func problems(in snapshot: FlashSnapshot, profile: DeviceProfile) -> [LocalEditRefusal] {
        // The image as provisioned: its `local` entries replaced by the saved files' values under them.
        var provisioned = snapshot
        let local = snapshot.parameters.filter { $0.value.source == .local }.map(\.key)
        if !local.isEmpty {
            let underEdits = savedFileValues(snapshot, profile: profile)
            for name in local { provisioned.parameters[name] = underEdits[name] }
        }
        return snapshot.localEdits.keys.sorted().compactMap { name -> LocalEditRefusal? in
            guard let edit = snapshot.localEdits[name] else { return nil }
            let current = provisioned.parameters[name]
            let found = refusal(name: name, value: edit.value, over: current, snapshot: provisioned, profile: profile)
            guard let found else { return nil }
            return profile.isSecret(name) ? withoutValue(found, value: edit.value) : found
        }
    }

    /// What the image's saved files provision, by name, the strongest file's entry for each (spec §4): the values a
    /// table's `local` entries stand over. A saved copy that does not parse provisions nothing.
    static func savedFileValues(_ snapshot: FlashSnapshot, profile: DeviceProfile) -> [String: Parameter] {
        var out: [String: Parameter] = [:]
        for kind in [FileKind.initial, .master, .product, .standard] {
            guard let saved = snapshot.savedFiles[kind],
                let document = try? ConfigParser.parse(
                    saved.body,
                    file: "saved copy of the \(kind.rawValue) file",
                    accepting: Set(profile.formats),
                    limits: profile.parserLimits
                )
            else { continue }
            for entry in document.entries {
                out[entry.name] = Parameter(
                    name: entry.name,
                    value: entry.value,
                    source: ParameterSource(kind),
                    perm: entry.perm,
                    access: entry.access
                )
            }
        }
        return out
    }

    /// `refusal` with the value masked in its message (only an invalid value's message quotes the value); the reason
    /// after it, which a URL's message gives, is kept.
    static func withoutValue(_ refusal: LocalEditRefusal, value: String) -> LocalEditRefusal {
        guard refusal.kind == .invalidValue, let form = ValueForm.of(refusal.name) else { return refusal }
        var masked = refusal
        let quoted = "\(refusal.name)=\"\(form == .url ? redactURL(value) : value)\""
        masked.message =
            refusal.message.hasPrefix(quoted)
            ? "\(refusal.name)=\"********\"" + refusal.message.dropFirst(quoted.count)
            : form.sentence(refusal.name, "********")
        return masked
    }

    /// Why `apply` refuses `value` for `name` standing over `current` (the table's entry), or nil: a parameter the
    /// phone does not know, one provisioned read-only, or a value the phone would not use (`ValueForm`).
    static func refusal(
        name: String,
        value: String,
        over current: Parameter?,
        snapshot: FlashSnapshot,
        profile: DeviceProfile
    ) -> LocalEditRefusal? {
        guard profile.knows(name) || current != nil else {
            let near = suggestions(for: name, in: Array(profile.factoryDefaults.keys) + Array(snapshot.parameters.keys))
            let hint = near.isEmpty ? "" : " (did you mean \(near.joined(separator: ", "))?)"
            return LocalEditRefusal(
                kind: .unknownParameter,
                name: name,
                message: "\(name) is not a parameter of \(profile.model)\(hint); `vphone config show` lists them all"
            )
        }
        if let current, current.source != .local, Perm(current.perm).refusesLocalEdit {
            return LocalEditRefusal(
                kind: .readOnly,
                name: name,
                message:
                    "\(name) is read-only: the \(current.source.rawValue) file provisions it with perm=\"\(current.perm)\"; "
                    + "change it on the provisioning server instead"
            )
        }
        let identity = snapshot.identity
        let macros = MacroContext(mac: identity.mac, model: identity.model, firmware: identity.firmware)
        guard let problem = ValueForm.of(name)?.problem(name, value, macros: macros) else { return nil }
        return LocalEditRefusal(kind: .invalidValue, name: name, message: problem)
    }

    /// Up to three known names that look like `name` (same prefix or a small edit distance).
    static func suggestions(for name: String, in names: [String]) -> [String] {
        let target = Array(name.uppercased().utf8)
        let scored = Set(names).compactMap { candidate -> (Int, String)? in
            let d = editDistance(target, Array(candidate.utf8), limit: 3)
            return d <= 3 ? (d, candidate) : nil
        }
        return scored.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.prefix(3).map(\.1)
    }

    static func editDistance(_ a: [UInt8], _ b: [UInt8], limit: Int) -> Int {
        if abs(a.count - b.count) > limit { return limit + 1 }
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...max(1, a.count) where !a.isEmpty {
            cur[0] = i
            for j in 1...max(1, b.count) where !b.isEmpty {
                cur[j] = Swift.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return a.isEmpty ? b.count : (b.isEmpty ? a.count : prev[b.count])
    }
}

// MARK: - The effective view

/// One row of `vphone config show`.
public struct EffectiveValue: Hashable, Sendable {
    public var name: String
    public var value: String
    public var source: ParameterSource
    public var perm: String
    public var access: String
    public var secret: Bool
}

public enum ConfigView {
    /// Factory defaults overlaid with the saved configuration: every parameter the phone has, with its source.
    public static func effective(profile: DeviceProfile, snapshot: FlashSnapshot) -> [EffectiveValue] {
        var rows: [String: EffectiveValue] = [:]
        for (name, value) in profile.factoryDefaults {
            rows[name] = EffectiveValue(
                name: name,
                value: value,
                source: .factory,
                perm: "",
                access: "",
                secret: profile.isSecret(name)
            )
        }
        // The stored file key stays in force after the standard file stops carrying it (spec §5).
        if let key = snapshot.fileKey {
            rows["CFG_FILE_KEY"] = EffectiveValue(
                name: "CFG_FILE_KEY",
                value: key.key,
                source: .standard,
                perm: "",
                access: "",
                secret: true
            )
        }
        for p in snapshot.parameters.values where !(p.name == "CFG_FILE_KEY" && snapshot.fileKey != nil) {
            rows[p.name] = EffectiveValue(
                name: p.name,
                value: p.value,
                source: p.source,
                perm: p.perm,
                access: p.access,
                secret: profile.isSecret(p.name)
            )
        }
        return rows.values.sorted { $0.name < $1.name }
    }

    /// The effective value of one parameter (saved configuration, else factory default).
    public static func value(_ name: String, profile: DeviceProfile, parameters: ParameterTable) -> String? {
        parameters.value(name) ?? profile.factoryDefaults[name]
    }
}
