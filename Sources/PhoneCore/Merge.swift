import ConfigFormats

/// One file's contribution to a merge: its parsed document, and whether it was downloaded in this cycle.
public struct MergeInput: Sendable {
    public var kind: FileKind
    public var document: ConfigDocument
    /// True when downloaded in this cycle; false when a saved copy stands in for it (spec §6).
    public var fresh: Bool

    public init(kind: FileKind, document: ConfigDocument, fresh: Bool) {
        self.kind = kind
        self.document = document
        self.fresh = fresh
    }
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
    /// Merges provisioned files and local edits into the effective configuration.
    ///
    /// Across files a later file never overrides an earlier one: standard > product > master > the initial file's own
    /// parameters > factory default. Local edits beat all provisioned values, unless the winning provisioned value
    /// carries `perm` with `!` and was downloaded in this cycle (or `overrideFromSavedCopy` is set).
    ///
    /// - Parameter recordShadowed: fill `shadowed` (which file lost where several set a value), for debug events.
    public static func effective(
        files: [MergeInput],
        localEdits: [String: LocalEdit],
        overrideFromSavedCopy: Bool = false,
        recordShadowed: Bool = true
    ) -> MergeResult {
        // Every entry of every file, strongest file first; sorted by name (then strength), the first of each name
        // wins: a name already set is never overridden by a weaker file.
        struct Candidate {
            var entry: ParameterTable.Entry
            var rank: Int32
            var input: Int32
        }
        let order: [FileKind] = [.standard, .product, .master, .initial]
        var total = 0
        for input in files {
            total += input.document.device.count + (input.kind == .initial ? input.document.initial.count : 0)
        }
        var candidates: [Candidate] = []
        candidates.reserveCapacity(total)
        var rank: Int32 = 0
        for kind in order {
            for (index, input) in files.enumerated() where input.kind == kind {
                let doc = input.document
                let source = ParameterSource(kind)
                // The initial file's <Initial> section (CfgFiles, Certs) is part of the phone's settings too.
                for entries in [doc.device, kind == .initial ? doc.initial : [:]] {
                    for (name, e) in entries {
                        let entry = ParameterTable.Entry(
                            name: name,
                            value: e.value,
                            bits: ParameterTable.bits(source: source, perm: e.perm, access: e.access)
                        )
                        candidates.append(Candidate(entry: entry, rank: rank, input: Int32(index)))
                    }
                    rank += 1
                }
            }
        }
        candidates.sort { $0.entry.name != $1.entry.name ? $0.entry.name < $1.entry.name : $0.rank < $1.rank }
        var entries = ContiguousArray<ParameterTable.Entry>()
        entries.reserveCapacity(candidates.count)
        var winners: [Int32] = []
        winners.reserveCapacity(candidates.count)
        var shadowed: [String: [ParameterSource]] = [:]
        for c in candidates {
            if let last = entries.last, last.name == c.entry.name {
                if recordShadowed, last.bits & 0xFF != c.entry.bits & 0xFF {
                    shadowed[last.name, default: []].append(ParameterTable.source(c.entry.bits))
                }
                continue
            }
            var entry = c.entry
            entry.name = ParameterNames.intern(entry.name)
            entries.append(entry)
            winners.append(c.input)
        }
        var params = ParameterTable(sortedEntries: entries)
        var overridden: [Parameter] = []
        var kept: [String] = []
        var applied: [Parameter] = []
        // Decided on the provisioned table (positions match `winners`), applied after.
        for (name, edit) in localEdits.sorted(by: { $0.key < $1.key }) {
            if case .found(let i) = params.position(of: name) {
                let p = ParameterTable.parameter(params.entries[i])
                if Perm(p.perm).overridesLocalEdit, files[Int(winners[i])].fresh || overrideFromSavedCopy {
                    overridden.append(Parameter(name: name, value: edit.value, source: .local))
                    continue
                }
                kept.append(name)
            }
            applied.append(Parameter(name: name, value: edit.value, source: .local))
        }
        for p in applied { params[p.name] = p }
        var counts: [ParameterSource: Int] = [:]
        var bySource = [Int](repeating: 0, count: ParameterSource.allCases.count)
        for e in params.entries { bySource[Int(e.bits & 0xFF)] += 1 }
        for (i, source) in ParameterSource.allCases.enumerated() where bySource[i] > 0 { counts[source] = bySource[i] }
        return MergeResult(
            parameters: params,
            overriddenLocalEdits: overridden,
            keptLocalEdits: kept,
            countBySource: counts,
            shadowed: shadowed
        )
    }
}

// MARK: - Local edits

/// Why a local edit was refused.
public struct LocalEditRefusal: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case unknownParameter = "unknown_parameter"
        case readOnly = "read_only"
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
    /// - Throws: `LocalEditRefusal` for a parameter the phone does not know or one provisioned read-only.
    public static func apply(
        name: String,
        value: String,
        snapshot: FlashSnapshot,
        profile: DeviceProfile,
        at now: PhoneTime
    ) throws(LocalEditRefusal) -> FlashChanges {
        let current = snapshot.parameters[name]
        guard profile.knows(name) || current != nil else {
            let near = suggestions(for: name, in: Array(profile.factoryDefaults.keys) + Array(snapshot.parameters.keys))
            let hint = near.isEmpty ? "" : " (did you mean \(near.joined(separator: ", "))?)"
            throw LocalEditRefusal(
                kind: .unknownParameter,
                name: name,
                message: "\(name) is not a parameter of \(profile.model)\(hint); `vphone config show` lists them all"
            )
        }
        if let current, current.source != .local, Perm(current.perm).refusesLocalEdit {
            throw LocalEditRefusal(
                kind: .readOnly,
                name: name,
                message:
                    "\(name) is read-only: the \(current.source.rawValue) file provisions it with perm=\"\(current.perm)\"; "
                    + "change it on the provisioning server instead"
            )
        }
        var changes = FlashChanges()
        changes.setLocalEdits = [LocalEdit(name: name, value: value, editedAt: now)]
        var params = snapshot.parameters
        params[name] = Parameter(name: name, value: value, source: .local)
        changes.parameters = params
        let shown = profile.isSecret(name) ? "********" : value
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
