import PhoneCore

/// A configuration file given by hand (a customer's file, an "export operational values" dump), parsed by the
/// caller, to build an image from (`vphone flash from-config`).
public struct ConfigFile: Sendable {
    /// The file's name; the image records it as the URL `file://NAME`.
    public var name: String
    /// The file as given (plain text: an encrypted file must be decrypted first).
    public var bytes: [UInt8]
    /// Its kind and parsed document (`fresh` is ignored: the file counts as downloaded now).
    public var input: MergeInput
    /// What the parser skipped without refusing the file, as `line N: ...`.
    public var warnings: [String]

    public init(name: String, bytes: [UInt8], input: MergeInput, warnings: [String] = []) {
        self.name = name
        self.bytes = bytes
        self.input = input
        self.warnings = warnings
    }

    /// `file://NAME`.
    public var url: String { "file://" + name }
}

/// The flash of a phone that has just provisioned itself from given files, as the phone would have written it
/// after its first power-on: the files as saved copies, the effective parameters (spec §4), each file
/// `downloaded`, the key a plain standard file carries (spec §5), the timers of spec §7, and the events saying so.
///
/// ```swift
/// let changes = ProvisionedImage.changes(files: files, profile: profile, at: now)
/// let store = try FlashStore.create(at: "ticket-4711.flash", identity: identity, applying: changes)
/// ```
public enum ProvisionedImage {
    /// The changes to apply to a fresh image.
    ///
    /// - Parameters:
    ///   - files: at most one per kind (a later one of the same kind replaces an earlier one).
    ///   - profile: the factory defaults (timers read them when no file sets a value).
    ///   - now: when the files count as downloaded; every time in the image is this one.
    public static func changes(files: [ConfigFile], profile: DeviceProfile, at now: PhoneTime) -> FlashChanges {
        var byKind: [FileKind: ConfigFile] = [:]
        for file in files { byKind[file.input.kind] = file }
        let ordered = FileKind.allCases.compactMap { byKind[$0] }
        let boot = 1
        var changes = FlashChanges()
        changes.bootCount = boot
        func log(_ level: LogEntry.Level, _ kind: String, _ message: String, _ fields: [String: String] = [:]) {
            changes.events.append(
                LogEntry(at: now, boot: boot, level: level, kind: kind, message: message, fields: fields)
            )
        }

        let kinds = ordered.map(\.input.kind.rawValue).joined(separator: ", ")
        log(
            .info,
            "from-config",
            "image built by vphone flash from-config from \(ordered.count) configuration file(s) (\(kinds)), as if "
                + "downloaded at the first power-on",
            ["files": kinds]
        )
        var inputs: [MergeInput] = []
        for file in ordered {
            let kind = file.input.kind
            let input = MergeInput(kind: kind, document: file.input.document, fresh: true)
            inputs.append(input)
            let count = Merge.effective(files: [input], localEdits: [:]).parameters.count
            log(
                .info,
                "fetched",
                "\(kind.rawValue) file loaded from \(file.url): \(file.bytes.count) bytes, \(count) parameter(s)",
                ["file": kind.rawValue, "url": file.url, "bytes": String(file.bytes.count)]
            )
            for warning in file.warnings {
                log(.warning, "file-warning", "\(kind.rawValue) file \(file.url): \(warning)", ["file": kind.rawValue])
            }
            changes.savedFiles.append(SavedFile(kind: kind, url: file.url, body: file.bytes, savedAt: now))
            changes.fileStatus.append(FileStatus(kind: kind, url: file.url, outcome: .downloaded, reason: "", at: now))
        }

        // spec §5: a plain standard file carrying CFG_FILE_KEY installs the key.
        if let standard = byKind[.standard],
            let key = Merge.effective(
                files: [MergeInput(kind: .standard, document: standard.input.document, fresh: true)],
                localEdits: [:]
            )
            .parameters["CFG_FILE_KEY"]?.value,
            !key.isEmpty
        {
            changes.fileKey = .install(FileKey(key: key, installedAt: now, sourceURL: standard.url))
            log(.info, "key", "file key installed from the plain standard file \(standard.url)", ["url": standard.url])
        }

        let merged = Merge.effective(files: inputs, localEdits: [:])
        changes.parameters = merged.parameters
        let counts = ParameterSource.allCases.reversed().compactMap { s in
            merged.countBySource[s].map { "\(s.rawValue) \($0)" }
        }
        log(
            .info,
            "apply",
            "configuration applied: \(merged.parameters.count) value(s) (\(counts.joined(separator: ", ")))",
            ["state": "applying"]
        )

        // spec §7: the timers the phone arms after a successful cycle, from the configuration now in force.
        let factory = profile.factoryDefaults
        let settings = TimerSettings { merged.parameters[$0]?.value ?? factory[$0] }
        for problem in settings.problems { log(.warning, "config", problem) }
        let plan = settings.plan(now: now, bootedAt: now, failed: false)
        for kind in TimerKind.allCases {
            guard let due = plan[kind] else { continue }
            changes.armTimers[kind] = due
            log(
                .info,
                "timer-armed",
                "\(kind.rawValue) timer armed for \(due)",
                ["timer": kind.rawValue, "due": "\(due)"]
            )
        }
        return changes
    }
}
