import ConfigFormats
import Crypto
import Synchronization

// MARK: - Events and actions

/// Something that happened to the phone. The runtime feeds these in, with the time they happened.
public enum PhoneEvent: Hashable, Sendable {
    /// Power on: flash is loaded (it is the machine's initial state) and the network comes up.
    case powerOn
    /// The transfer `id` finished with this response body (`status` 0 for TFTP).
    case fetched(id: Int, status: Int, body: [UInt8])
    /// The transfer `id` failed.
    case fetchFailed(id: Int, FetchError)
    /// An armed timer came due.
    case timerFired(TimerKind)
    /// A resync asked for by a person or a harness (the control API, a signal).
    case resyncRequested(reason: String)
    /// A SIP NOTIFY arrived with this `Event:` header (spec §7: `CFG_RESYNC_FROM_SIP` resyncs at once).
    case sipNotify(event: String)
    /// A local edit, as on the phone's web UI.
    case localEdit(name: String, value: String)
    /// Local edits were changed in flash by another process (e.g. `vphone config set` beside a running phone).
    case localEditsReloaded([String: LocalEdit])
}

/// A transport failure as the phone sees it: a class and a sentence.
public struct FetchError: Hashable, Sendable, CustomStringConvertible {
    /// `dns`, `connect`, `tls`, `http_status`, `timeout`, `too_large`, `protocol_refused`, `redirect`, `auth`, ...
    public var kind: String
    public var httpStatus: Int?
    public var message: String

    public init(kind: String, httpStatus: Int? = nil, message: String) {
        self.kind = kind
        self.httpStatus = httpStatus
        self.message = message
    }

    public var description: String { message }
}

/// What a download is for.
public enum FetchTarget: Hashable, Sendable {
    /// One of the four configuration files.
    case file(FileKind)
    /// A root certificate named by `CFG_ROOT_CERTIFICATE_PATHn` in the initial file's `<Certs>`.
    case rootCertificate(slot: Int)
}

/// A download the phone wants.
public struct FetchOrder: Hashable, Sendable {
    public var id: Int
    public var target: FetchTarget
    public var url: String
    public var userAgent: String
    public var username: String?
    public var password: String?
    public var maxBytes: Int
    public var connectTimeoutMs: Int
    public var totalTimeoutMs: Int
    public var reuseConnection: Bool
    /// Root certificates from `<Certs>` (PEM), trusted for HTTPS besides the system store.
    public var extraCAPEM: [UInt8]?
    /// `host:port` of the HTTP proxy (`HTTP_ENABLE_PROXY`), or nil.
    public var proxy: String?

    /// The configuration file this download is, or nil for a root certificate.
    public var file: FileKind? {
        if case .file(let k) = target { return k }
        return nil
    }
}

/// What the runtime must do, in order.
public enum PhoneAction: Hashable, Sendable {
    /// Write these changes to flash, as one transaction. Always the first action of a step.
    case persist(FlashChanges)
    /// Start this download and answer with `.fetched` or `.fetchFailed`.
    case fetch(FetchOrder)
    /// Fire `.timerFired(kind)` at this time (replaces an armed timer of the same kind).
    case arm(TimerKind, at: PhoneTime)
    /// Disarm a timer.
    case cancel(TimerKind)
    /// A provisioning cycle ended.
    case cycleFinished(CycleReport)
    /// A local edit was refused.
    case refused(LocalEditRefusal)
    /// A download arrived whole (the transfer succeeded) but the phone rejected what it holds: fleet statistics count
    /// it as a failed request of that class, not as a success. Nothing for the runtime to do otherwise.
    case rejected(FetchTarget, FileRejection)
}

/// Why a downloaded file was rejected: a class of failed request, as the transport's classes are.
public enum FileRejection: String, Hashable, Sendable, CaseIterable {
    /// Not a configuration file the phone can read (truncated, malformed, an error page served as 200), or not a
    /// certificate.
    case invalidFile = "invalid_file"
    /// Encrypted, and the phone's key does not open it.
    case decryption
}

/// How a provisioning cycle ended. The raw values are `vphone boot --once`'s exit codes.
public enum CycleOutcome: Int32, Hashable, Sendable, Codable {
    /// Every configured file downloaded and applied.
    case provisioned = 0
    /// At least one file failed; its saved copy (or nothing) stood in.
    case fellBack = 10
    /// No usable configuration at all: nothing downloaded, nothing saved.
    case unconfigured = 11

    public var name: String {
        switch self {
        case .provisioned: return "provisioned"
        case .fellBack: return "fell_back"
        case .unconfigured: return "unconfigured"
        }
    }
}

public struct CycleReport: Hashable, Sendable {
    public var trigger: String
    public var startedAt: PhoneTime
    public var finishedAt: PhoneTime
    public var outcome: CycleOutcome
    public var files: [FileKind: FileStatus]
}

/// Where to look for the initial file beyond what flash holds (spec §3), as given on the command line.
public struct DiscoveryOptions: Hashable, Sendable {
    /// Overrides `USR_PROV_SVR_URL` for this power-on (not saved).
    public var provisioningURL: String?
    /// The URL a SIP plug-and-play NOTIFY would carry (vphone does not send multicast SUBSCRIBEs).
    public var sipPnPURL: String?
    /// DHCP option values, as a DHCP server would hand them out.
    public var option160: String?
    public var option159: String?
    public var option66: String?

    public init(
        provisioningURL: String? = nil,
        sipPnPURL: String? = nil,
        option160: String? = nil,
        option159: String? = nil,
        option66: String? = nil
    ) {
        self.provisioningURL = provisioningURL
        self.sipPnPURL = sipPnPURL
        self.option160 = option160
        self.option159 = option159
        self.option66 = option66
    }
}

/// A profile with its derived tables computed once, shared by every phone of a fleet.
public final class PreparedProfile: Sendable {
    public let profile: DeviceProfile
    /// Factory default of every parameter, per-line ones expanded.
    public let factory: [String: String]
    /// `factory`'s value of each `CycleParameter`, by its number.
    let factoryCycleValues: [String?]
    public let limits: [ConfigFormat: Int]
    public let formats: Set<ConfigFormat>
    /// `profile.downloadCap`, worked out once: every fetch order carries it.
    let downloadCap: Int

    let documents = DocumentCache()
    /// What the phones of a fleet share (saved bodies, configuration), or nil: each phone keeps its own.
    public let shared: SharedPhoneState?

    /// - Parameter sharing: keep what the phones have in common once (a fleet); each phone's views are unchanged.
    public init(_ profile: DeviceProfile, sharing: Bool = false) {
        self.profile = profile
        let factory = profile.factoryDefaults
        self.factory = factory
        factoryCycleValues = CycleParameter.allCases.map { factory[$0.name] }
        limits = profile.parserLimits
        downloadCap = profile.downloadCap
        formats = Set(profile.formats)
        shared = sharing ? SharedPhoneState() : nil
    }

    /// Parses a file for this model: the document, and its entries sorted for the merge. Parsing is a pure function
    /// of the bytes, so a file that many phones of a fleet download (the product, master and initial files) is
    /// parsed once and its document shared: the phones then also share the strings of their effective values.
    /// A phone's own (standard) file with the names of the last one parsed here, in the same order, has no document
    /// made: the document returned is empty and the run stands for it (`MergeRun.standsForDocument`; read values
    /// through `MergeInput.value`). So what is returned for a standard file depends on the file before it; what it
    /// holds does not. `known` says what was found out about the body on the way, for its saved copy
    /// (`SharedPhoneState.savedBody`): the memo's copy of the same bytes, or the template it is with its changes.
    ///
    /// - Parameter kind: a standard file is the phone's own and never goes into the memo of shared documents: seen
    ///   again when its phone resyncs, it would otherwise look shared (and be sorted, and break the memo of the
    ///   shared files' merge, for every phone of a resync wave).
    func parsed(
        _ body: [UInt8],
        file: String,
        kind: FileKind
    ) throws(ConfigFormatError) -> (document: ConfigDocument, run: MergeRun?, known: KnownBody?) {
        guard kind == .standard else {
            // Most often the last body of its kind again (a fleet's phones download the same product and master
            // files): compared, and not hashed.
            if let hit = documents.lookup(body, key: nil, kind: kind) {
                return (hit.document, hit.run, .same(hit.body))
            }
            let key = DocumentCache.key(body)
            if let hit = documents.lookup(body, key: key, kind: kind) {
                return (hit.document, hit.run, .same(hit.body))
            }
            var doc = try ConfigParser.parse(body, file: file, accepting: formats, limits: limits)
            if let kept = profile.withoutAbsentLines(doc) { doc = kept }
            return (doc, documents.store(body, doc, key: key), nil)
        }
        // A phone's own file. The last phone's file with other values: only its texts are read. Else it is read in
        // file order, and put in name order as the last one was when it has the same names. Either way its document
        // is never made (the run stands for it). (A product or master file seen for the first time would only take
        // the standard files' place in that memo.)
        if let template = merges.ownTemplate(),
            let read = try ConfigParser.values(
                body,
                like: template.xml,
                file: file,
                accepting: formats,
                limits: limits
            )
        {
            let document = ConfigDocument(format: .xml, hasInitialSection: template.xml.hasInitialSection)
            return (
                document, merges.ownRun(values: read.values, of: template),
                .template(template.xml.body, changes: read.changes)
            )
        }
        switch try ConfigParser.parseInFileOrder(body, file: file, accepting: formats, limits: limits) {
        case .document(let doc):
            return (profile.withoutAbsentLines(doc) ?? doc, nil, nil)
        case .scanned(let scanned):
            // The last file's names have no line the model lacks (such a file is never kept, below).
            if let run = merges.ownRun(sameNamesAs: scanned) {
                return (ConfigDocument(format: .xml, hasInitialSection: scanned.hasInitialSection), run, nil)
            }
            let doc = ConfigParser.document(of: scanned)
            // Parameters of lines the model does not have are left out: such a file is no template for the next.
            if let kept = profile.withoutAbsentLines(doc) { return (kept, nil, nil) }
            // Every name once and none under <Initial>: the names and their order are kept for the next phone.
            let whole = doc.initial.isEmpty && doc.device.count == scanned.entries.count
            return (doc, whole ? merges.ownRun(fileOrder: scanned) : nil, nil)
        }
    }

    /// The merge of the shared files, kept from one phone to the next.
    let merges = MergeMemo()

    /// `ProvisioningURL.candidates(raw, macros:)`, kept for a URL that does not name the MAC: the same for every
    /// phone of a fleet (the initial, product and master files' URLs mostly), and about a tenth of a fetch's work in
    /// the machine.
    func candidates(_ raw: String, macros: MacroContext) throws(URLProblem) -> [String] {
        guard !MacroContext.namesTheMAC(raw) else { return try ProvisioningURL.candidates(raw, macros: macros) }
        // The model and firmware are the rest of what the URLs are made of.
        let key = URLKey(raw: raw, model: macros.model, firmware: macros.firmware)
        // Strings are equal when canonically equivalent (`é` and `e` + U+0301); the phone uses the bytes it was given.
        if let kept = urls.withLock({ $0[key] }), kept.key.sameBytes(as: key) { return kept.candidates }
        let candidates = try ProvisioningURL.candidates(raw, macros: macros)
        urls.withLock { urls in
            if urls.count >= Self.maxURLs { urls.removeAll() }
            urls[key] = (key, candidates)
        }
        return candidates
    }

    private struct URLKey: Hashable {
        var raw: String
        var model: String
        var firmware: String

        func sameBytes(as other: URLKey) -> Bool {
            Self.sameBytes(raw, other.raw) && Self.sameBytes(model, other.model)
                && Self.sameBytes(firmware, other.firmware)
        }

        /// Compared as memory: a generic walk of two `UTF8View`s cost 11k instructions a phone here.
        private static func sameBytes(_ a: String, _ b: String) -> Bool {
            a.withUTF8Bytes { x in
                b.withUTF8Bytes { y in BodyBytes.equal(UnsafeRawBufferPointer(x), UnsafeRawBufferPointer(y)) }
            }
        }
    }
    private let urls = Mutex<[URLKey: (key: URLKey, candidates: [String])]>([:])
    /// A fleet's files have a handful of URLs; a server naming new ones each time cannot grow this without bound.
    static let maxURLs = 64
}

/// A memo of parsed documents for bodies seen more than once: the files many phones share. A product or master file
/// made per phone (a `{MAC}` in its path) is seen again when its phone resyncs, so it can reach the memo too; it is
/// then found by that phone alone, and a full memo makes room by dropping the entries nobody asked for since the
/// last time it was full. (Such a file also takes the place of the shared files in the merge memo: a known cost of
/// per-phone product and master files in a resync wave.)
final class DocumentCache: Sendable {
    private struct Hot {
        var body: [UInt8]
        var document: ConfigDocument
        var run: MergeRun
        /// Lookups that found it, halved each time the memo is full.
        var hits = 0
    }
    private struct State {
        var seen: [Int: Int] = [:]
        var hot: [Int: Hot] = [:]
        /// The key of the body last found for each kind of file.
        var recent: [FileKind: Int] = [:]
    }
    private let state = Mutex(State())
    private static let maxSeen = 8192
    static let maxHot = 256

    /// The body's hash, computed once for a lookup and the store that may follow it.
    static func key(_ body: [UInt8]) -> Int { BodyBytes.hash(body) }

    /// The memo's document and run for `body`, and its copy of the body, if it holds them: the body with hash `key`,
    /// which becomes the last one found for `kind`; with `key` nil, only the last one found for `kind` is tried (the
    /// body need not be hashed).
    func lookup(
        _ body: [UInt8],
        key: Int?,
        kind: FileKind
    ) -> (document: ConfigDocument, run: MergeRun?, body: [UInt8])? {
        state.withLock { s in
            guard let k = key ?? s.recent[kind], let entry = s.hot[k], BodyBytes.equal(entry.body, body) else {
                return nil
            }
            s.hot[k]?.hits += 1
            s.recent[kind] = k
            return (entry.document, entry.run, entry.body)
        }
    }

    /// Notes a parsed body; returns the document's merge run when the body is now known to be shared.
    func store(_ body: [UInt8], _ document: ConfigDocument, key k: Int) -> MergeRun? {
        let count = state.withLock { s in
            let count = (s.seen[k] ?? 0) + 1
            if s.seen.count >= Self.maxSeen { s.seen.removeAll(keepingCapacity: true) }
            s.seen[k] = count
            return count
        }
        guard count >= 2 else { return nil }
        let run = MergeRun(document, interned: true, common: true)
        state.withLock { s in
            if s.hot.count >= Self.maxHot {
                // Without this, the first 256 per-phone files seen twice kept the memo full for the rest of a run,
                // and a file shared later (a master file changed on the server) was parsed, sorted and merged again
                // by every phone. Files found since the last sweep stay; the counts age, so a file every phone
                // downloads survives many sweeps and one found once survives one.
                s.hot = s.hot.filter { $0.value.hits > 0 }.mapValues { entry in
                    var entry = entry
                    entry.hits /= 2
                    return entry
                }
            }
            if s.hot.count < Self.maxHot { s.hot[k] = Hot(body: body, document: document, run: run) }
        }
        return run
    }

    /// Whether the memo holds this body (for tests).
    func holds(_ body: [UInt8]) -> Bool { state.withLock { s in s.hot[Self.key(body)] != nil } }
}

// MARK: - The machine

/// The KX-UTG300's boot and provisioning state machine: events in, actions out, no I/O (ARCHITECTURE rule 1).
///
/// ```swift
/// var phone = PhoneMachine(profile: prepared, flash: snapshot, discovery: .init(provisioningURL: url))
/// let actions = phone.handle(.powerOn, at: now)   // [.persist(...), .fetch(initial file)]
/// ```
public struct PhoneMachine: Sendable {
    public enum Phase: Hashable, Sendable {
        case off
        case provisioning(FileKind)
        case idle
    }

    public let profile: PreparedProfile
    public let discovery: DiscoveryOptions
    /// The machine's view of flash, kept in step with every `.persist` it emits.
    public private(set) var flash: FlashSnapshot
    public private(set) var phase: Phase = .off
    /// Timers armed now.
    public private(set) var timers: [TimerKind: PhoneTime] = [:]
    /// The last finished cycle.
    public private(set) var lastReport: CycleReport?
    public private(set) var bootedAt: PhoneTime?

    /// Whether debug-level events (which file won each parameter, stale answers, skipped files) are made at all.
    /// A fleet turns them off: they cost a string per shadowed parameter per phone, and nobody reads them there.
    public var debugEvents = true
    /// Whether events are made at all. A fleet whose flash lives in memory only turns them off: its phones' events
    /// are neither kept nor logged, and building their sentences was a good part of a phone's CPU.
    public var makesEvents = true

    private var cycle: Cycle?
    private var deferredTrigger: String?
    private var nextFetchID = 1

    public init(profile: PreparedProfile, flash: FlashSnapshot, discovery: DiscoveryOptions = DiscoveryOptions()) {
        self.profile = profile
        self.flash = flash
        self.discovery = discovery
    }

    private var macros: MacroContext {
        MacroContext(mac: flash.identity.mac, model: flash.identity.model, firmware: flash.identity.firmware)
    }

    // MARK: Handling events

    /// Feeds one event; returns what the runtime must do, `.persist` first.
    public mutating func handle(_ event: PhoneEvent, at now: PhoneTime) -> [PhoneAction] {
        var step = Step(now: now, boot: flash.bootCount, debug: debugEvents, events: makesEvents)
        switch event {
        case .powerOn:
            powerOn(&step)
        // The cycle is read and changed in place here and on every fetch's way: a copy of it is a retain and a
        // release of each of its fields, a good part of a fleet phone's CPU when made a few times per file.
        case .fetched(let id, let status, let body):
            guard cycle?.pendingFetch == id else {
                step.log(.debug, "stale", "ignored the answer to an abandoned transfer #\(id)")
                break
            }
            cycle?.pendingFetch = nil
            received(body: body, status: status, &step)
        case .fetchFailed(let id, let error):
            guard cycle?.pendingFetch == id else {
                step.log(.debug, "stale", "ignored the failure of an abandoned transfer #\(id)")
                break
            }
            cycle?.pendingFetch = nil
            failed(error, &step)
        case .timerFired(let kind):
            guard timers[kind] != nil else { break }
            timers[kind] = nil
            step.changes.cancelTimers.append(kind)
            step.log(.info, "timer", "\(kind.rawValue) timer fired", ["timer": kind.rawValue])
            requestCycle(trigger: kind.rawValue, &step)
        case .resyncRequested(let reason):
            step.log(.info, "resync", "resync requested: \(reason)", ["reason": reason])
            requestCycle(trigger: "request", &step)
        case .sipNotify(let name):
            let expected = value("CFG_RESYNC_FROM_SIP") ?? ""
            if !expected.isEmpty, name == expected {
                step.log(.info, "notify", "SIP NOTIFY Event: \(name) matches CFG_RESYNC_FROM_SIP: resync now")
                requestCycle(trigger: "notify", &step)
            } else {
                step.log(
                    .info,
                    "notify",
                    "SIP NOTIFY Event: \(name) ignored (CFG_RESYNC_FROM_SIP is \"\(expected)\")"
                )
            }
        case .localEdit(let name, let value):
            do {
                let changes = try LocalEditRule.apply(
                    name: name,
                    value: value,
                    snapshot: flash,
                    profile: profile.profile,
                    at: now
                )
                step.changes.merge(changes)
            } catch {
                step.log(
                    .warning,
                    "local-edit-refused",
                    error.message,
                    ["parameter": name, "reason": error.kind.rawValue]
                )
                step.actions.append(.refused(error))
            }
        case .localEditsReloaded(let edits):
            guard edits != flash.localEdits else { break }
            var params = flash.parameters
            for (name, p) in params where p.source == .local && edits[name] == nil { params[name] = nil }
            for e in edits.values { params[e.name] = Parameter(name: e.name, value: e.value, source: .local) }
            flash.localEdits = edits
            flash.parameters = params
            step.log(.info, "local-edit", "local edits reloaded from flash (\(edits.count))")
        }
        return step.finish(into: &flash)
    }

    // MARK: Power-on and cycles

    private mutating func powerOn(_ step: inout Step) {
        flash.bootCount = min(flash.bootCount, FlashSnapshot.maxBootCount - 1) + 1
        step.boot = flash.bootCount
        step.changes.bootCount = flash.bootCount
        bootedAt = step.now
        // Timers do not survive a power cycle: the boot-time provisioning arms them anew (spec §7).
        step.changes.cancelTimers = TimerKind.allCases.filter { flash.timers[$0] != nil }
        timers = [:]
        step.log(
            .info,
            "power-on",
            "power on (boot \(flash.bootCount)) as \(flash.identity.model) \(flash.identity.mac) firmware "
                + "\(flash.identity.firmware); flash holds \(flash.savedFiles.count) saved file(s), "
                + "\(flash.parameters.count) saved value(s), \(flash.localEdits.count) local edit(s)",
            ["state": "booting"]
        )
        step.log(.info, "state", "network up", ["state": "network-up"])
        startCycle(trigger: "boot", &step)
    }

    private mutating func requestCycle(trigger: String, _ step: inout Step) {
        if case .provisioning = phase {
            deferredTrigger = trigger
            step.log(.info, "deferred", "a provisioning cycle is running; the \(trigger) resync follows it")
            return
        }
        startCycle(trigger: trigger, &step)
    }

    private mutating func startCycle(trigger: String, _ step: inout Step) {
        cycle = Cycle(trigger: trigger, startedAt: step.now)
        step.log(.info, "cycle-start", "provisioning cycle started (\(trigger))", ["trigger": trigger])
        guard TimerSettings.isYes(value("PROVISION_ENABLE") ?? "Y") else {
            step.log(.info, "discover", "PROVISION_ENABLE=N: no provisioning; the saved configuration stays in use")
            useSavedConfiguration(reason: "provisioning is disabled", &step)
            return
        }
        guard let (source, raw) = discoverInitialURL(&step) else {
            step.log(
                .warning,
                "discover",
                "no provisioning server: no USR_PROV_SVR_URL, no --prov-url, no SIP plug-and-play answer, "
                    + "no DHCP option 160/159/66",
                ["state": "discovering"]
            )
            fileUnavailable(.initial, url: "", reason: "no provisioning server found", &step)
            return
        }
        step.log(
            .info,
            "discover",
            "initial file URL from \(source): \(redactURL(raw))",
            ["source": source, "url": redactURL(raw), "state": "discovering"]
        )
        fetch(.initial, raw: raw, &step)
    }

    /// Spec §3: the hand-set URL, SIP plug-and-play, DHCP options 160, 159, 66, each only when enabled.
    private func discoverInitialURL(_ step: inout Step) -> (String, String)? {
        if let url = discovery.provisioningURL, !url.isEmpty { return ("--prov-url", url) }
        if let url = value("USR_PROV_SVR_URL"), !url.trimmingWhitespace().isEmpty { return ("USR_PROV_SVR_URL", url) }
        if TimerSettings.isYes(value("SIPPNP_ENABLE") ?? "N") {
            if let url = discovery.sipPnPURL, !url.isEmpty { return ("SIP plug-and-play", url) }
            step.log(.debug, "discover", "SIP plug-and-play: no NOTIFY answered the SUBSCRIBE")
        }
        let options: [(String, String, String?)] = [
            ("160", "OPTION160_ENABLE", discovery.option160), ("159", "OPTION159_ENABLE", discovery.option159),
            ("66", "OPTION66_ENABLE", discovery.option66),
        ]
        for (number, enable, given) in options {
            guard let given, !given.isEmpty else { continue }
            if TimerSettings.isYes(value(enable) ?? "Y") { return ("DHCP option \(number)", given) }
            step.log(.info, "discover", "DHCP option \(number) ignored: \(enable)=N")
        }
        return nil
    }

    private mutating func fetch(_ kind: FileKind, raw: String, _ step: inout Step) {
        phase = .provisioning(kind)
        do {
            let candidates = try profile.candidates(raw, macros: macros)
            cycle?.candidates = candidates
            cycle?.candidateIndex = 0
            issueFetch(.file(kind), &step)
        } catch {
            step.log(.error, "bad-url", "\(kind.rawValue) file: \(error)", ["file": kind.rawValue])
            fileUnavailable(kind, url: raw, reason: error.reason, &step)
        }
    }

    /// The User-Agent for `raw`, its macros expanded: the cycle's last one again when `raw` has not changed (a
    /// cycle's fetches mostly send the same one).
    private mutating func userAgent(_ raw: String) -> String {
        let context = self.macros
        if let last = cycle?.userAgent, last.raw == raw, last.macros == context { return last.expanded }
        let expanded = context.expand(raw)
        cycle?.userAgent = (raw, context, expanded)
        return expanded
    }

    private mutating func issueFetch(_ target: FetchTarget, _ step: inout Step) {
        guard let index = cycle?.candidateIndex, let url = cycle?.candidates[index] else { return }
        let id = nextFetchID
        nextFetchID += 1
        cycle?.pendingFetch = id
        cycle?.target = target
        if case .file(let kind) = target { cycle?.stage = kind }
        // spec §3: USR_PROV_SVR_AUTH_* for the initial file, HTTP_AUTH_* for everything after it.
        let initial = target == .file(.initial)
        let user = cycleValue(initial ? .provisioningAuthID : .authID) ?? ""
        let pass = cycleValue(initial ? .provisioningAuthPassword : .authPassword) ?? ""
        var proxy: String?
        if TimerSettings.isYes(cycleValue(.proxyEnabled) ?? "N"),
            let host = cycleValue(.proxyAddress)?.trimmingWhitespace(), !host.isEmpty
        {
            proxy = "\(host):\(cycleValue(.proxyPort)?.trimmingWhitespace() ?? "8080")"
        }
        let pem = rootCertificatesPEM()
        let order = FetchOrder(
            id: id,
            target: target,
            url: url,
            userAgent: userAgent(cycleValue(.userAgent) ?? ""),
            username: user.isEmpty ? nil : user,
            password: user.isEmpty ? nil : pass,
            maxBytes: profile.downloadCap,
            connectTimeoutMs: profile.profile.connectTimeoutMs,
            totalTimeoutMs: profile.profile.totalTimeoutMs,
            reuseConnection: profile.profile.quirks.reuseConnection,
            extraCAPEM: pem.isEmpty ? nil : pem,
            proxy: proxy
        )
        step.log(
            .info,
            "fetch",
            "downloading the \(target.description) \(redactURL(url))",
            ["file": target.fieldValue, "url": redactURL(url), "state": "fetching-\(target.fieldValue)"]
        )
        step.actions.append(.fetch(order))
    }

    private mutating func received(body: [UInt8], status: Int, _ step: inout Step) {
        guard let target = cycle?.target, let kind = cycle?.stage, let index = cycle?.candidateIndex,
            let url = cycle?.candidates[index]
        else { return }
        if case .rootCertificate(let slot) = target {
            certificateReceived(slot: slot, body: body, &step)
            return
        }
        let name = "\(kind.rawValue) file \(redactURL(url))"
        switch decode(body, kind: kind, url: url, file: name) {
        case .failure(let problem):
            step.log(.error, "invalid-file", problem.message, problem.fields(file: kind, url: url))
            step.actions.append(.rejected(target, problem.decryption == nil ? .invalidFile : .decryption))
            fileUnavailable(kind, url: url, reason: "invalid file: \(problem.reason)", &step)
        case .success(let decoded):
            let doc = decoded.document
            let input = MergeInput(kind: kind, document: doc, fresh: true, run: decoded.run)
            step.log(
                .info,
                "fetched",
                "\(kind.rawValue) file downloaded: \(body.count) bytes\(decoded.encrypted ? ", decrypted" : ""), "
                    + "\(input.parameterCount) parameter(s)",
                [
                    "file": kind.rawValue, "url": redactURL(url), "status": String(status),
                    "bytes": String(body.count), "encrypted": decoded.encrypted ? "yes" : "no",
                ]
            )
            for w in doc.warnings {
                step.log(.warning, "file-warning", "\(name): line \(w.line): \(w.message)", ["file": kind.rawValue])
            }
            if !decoded.encrypted {
                checkKeyExposure(kind: kind, key: input.value("CFG_FILE_KEY", initialToo: false), url: url, &step)
            }
            cycle?.inputs.append(input)
            // The saved copy is the file as applied (decrypted): it must stand in even after a key rotation.
            let saved =
                profile.shared?.savedBody(decoded.plaintext, kind: kind, known: decoded.known)
                ?? SavedBody(decoded.plaintext)
            cycle?.downloads.append(SavedFile(kind: kind, url: url, savedBody: saved, savedAt: step.now))
            cycle?.statuses[kind] = FileStatus(kind: kind, url: url, outcome: .downloaded, reason: "", at: step.now)
            if kind == .initial { cycle?.initial = doc }
            next(after: kind, &step)
        }
    }

    private mutating func failed(_ error: FetchError, _ step: inout Step) {
        guard var c = cycle else { return }
        let url = c.candidates[c.candidateIndex]
        var fields = ["file": c.target.fieldValue, "url": redactURL(url), "class": error.kind]
        if let s = error.httpStatus { fields["status"] = String(s) }
        step.log(.warning, "fetch-failed", "\(c.target.description) \(redactURL(url)): \(error.message)", fields)
        if c.candidateIndex + 1 < c.candidates.count {
            c.candidateIndex += 1
            cycle = c
            step.log(.info, "fetch", "trying the next scheme for the scheme-less URL (spec §3)")
            issueFetch(c.target, &step)
            return
        }
        if case .rootCertificate(let slot) = c.target {
            certificateUnavailable(slot: slot, reason: error.message, &step)
            return
        }
        fileUnavailable(c.stage, url: url, reason: error.message, &step)
    }

    // MARK: Root certificates (`<Certs>`)

    /// Downloads the root certificates named in the initial file, in slot order, before the device files, so an
    /// HTTPS server of the standard file can already be verified with them.
    private mutating func nextCertificate(after slot: Int, _ step: inout Step) {
        guard cycle != nil else { return }
        let initial = cycle?.initial
        var s = slot + 1
        while s <= 3 {
            let raw = initial?.initial["CFG_ROOT_CERTIFICATE_PATH\(s)"]?.value.trimmingWhitespace() ?? ""
            if raw.isEmpty {
                if flash.rootCertificates[s] != nil || cycle?.certificates[s] != nil {
                    cycle?.removedCertificates.insert(s)
                    cycle?.certificates[s] = nil
                    step.log(.info, "certificate", "root certificate \(s): no longer named in <Certs>; removed")
                }
                s += 1
                continue
            }
            do {
                let candidates = try ProvisioningURL.candidates(raw, macros: macros)
                cycle?.candidates = candidates
                cycle?.candidateIndex = 0
                issueFetch(.rootCertificate(slot: s), &step)
                return
            } catch {
                step.log(.error, "bad-url", "root certificate \(s): \(error)", ["file": "certificate\(s)"])
                s += 1
            }
        }
        cycle?.certificatesDone = true
        next(after: .initial, &step)
    }

    private mutating func certificateReceived(slot: Int, body: [UInt8], _ step: inout Step) {
        guard let c = cycle else { return }
        let url = c.candidates[c.candidateIndex]
        do {
            _ = try CertificatePEM.count(body)
        } catch {
            step.actions.append(.rejected(.rootCertificate(slot: slot), .invalidFile))
            certificateUnavailable(slot: slot, reason: error.description, &step)
            return
        }
        cycle?.certificates[slot] = RootCertificate(slot: slot, url: url, pem: body, savedAt: step.now)
        step.log(
            .info,
            "certificate",
            "root certificate \(slot) downloaded: \(body.count) bytes, trusted for HTTPS besides the system store",
            ["file": "certificate\(slot)", "url": redactURL(url)]
        )
        nextCertificate(after: slot, &step)
    }

    private mutating func certificateUnavailable(slot: Int, reason: String, _ step: inout Step) {
        let kept = flash.rootCertificates[slot] != nil
        step.log(
            .warning,
            "certificate",
            "root certificate \(slot): \(reason); \(kept ? "the saved one stays in use" : "none saved")",
            ["file": "certificate\(slot)", "reason": reason]
        )
        cycle?.certificateFailures += 1
        nextCertificate(after: slot, &step)
    }

    /// Every root certificate in force: saved ones, replaced by those downloaded in this cycle.
    private func rootCertificatesPEM() -> [UInt8] {
        if flash.rootCertificates.isEmpty && cycle?.certificates.isEmpty != false { return [] }
        var certs = flash.rootCertificates
        if let c = cycle {
            for s in c.removedCertificates { certs[s] = nil }
            for (s, cert) in c.certificates { certs[s] = cert }
        }
        var out: [UInt8] = []
        for s in certs.keys.sorted() {
            out += certs[s]?.pem ?? []
            if out.last != UInt8(ascii: "\n") { out.append(UInt8(ascii: "\n")) }
        }
        return out
    }

    // MARK: Encryption and the key (spec §5)

    /// The key in force during this cycle: one a plain standard file delivered in this cycle already decrypts the
    /// product and master files of the same cycle (the guide's worked example); else the stored one.
    private func cycleKey() -> String? {
        if let k = cycle?.newKey { return k }
        return flash.fileKey?.key
    }

    /// Spec §5, conformance: the server must delete the plain standard file after the first download, and files
    /// after the key is set come encrypted.
    ///
    /// - Parameter key: the file's `CFG_FILE_KEY` (outside `<Initial>`), if it sets one.
    private mutating func checkKeyExposure(kind: FileKind, key: String?, url: String, _ step: inout Step) {
        let held = flash.fileKey?.key
        switch kind {
        case .standard:
            guard let key, !key.isEmpty else { return }
            if key == held {
                step.log(
                    .warning,
                    "key-exposed",
                    "key exposed in clear: the server still serves the plain standard file carrying the key this "
                        + "phone already holds; it must delete the plain file after the first download (guide 2.6.1)",
                    ["file": kind.rawValue, "url": redactURL(url)]
                )
            } else {
                cycle?.newKey = key
                cycle?.newKeyURL = redactURL(url)
            }
        case .product, .master:
            guard cycleKey() != nil else { return }
            step.log(
                .warning,
                "key-exposed",
                "key exposed in clear: the \(kind.rawValue) file came in plain text although this phone holds a file "
                    + "key; the server should serve it encrypted (.enc)",
                ["file": kind.rawValue, "url": redactURL(url)]
            )
        case .initial:
            return
        }
    }

    /// A decoded file: its parsed document and plain bytes, and whether it came encrypted.
    struct Decoded {
        /// Empty when `run` stands for it (as in `MergeInput`).
        var document: ConfigDocument
        var run: MergeRun?
        /// What parsing found out about `plaintext`, for its saved copy.
        var known: KnownBody?
        var plaintext: [UInt8]
        var encrypted: Bool
    }

    /// Why a file is invalid: decryption or parsing.
    struct DecodeProblem: Error {
        var message: String
        var reason: String
        var line: Int?
        var decryption: String?

        func fields(file: FileKind, url: String) -> [String: String] {
            var f = ["file": file.rawValue, "url": redactURL(url), "reason": reason]
            if let line { f["line"] = String(line) }
            if let decryption { f["decryption"] = decryption }
            return f
        }
    }

    /// Decrypts (spec §5: `.enc` in the URL path, or a body starting with `U2FsdGVkX1`) and parses a file.
    private func decode(_ body: [UInt8], kind: FileKind, url: String, file: String) -> Result<Decoded, DecodeProblem> {
        let encrypted = FileCrypto.looksEncrypted(body) || Self.pathEndsInEnc(url)
        var plaintext = body
        if encrypted {
            let bits = Int(cycleValue(.fileKeyLength)?.trimmingWhitespace() ?? "128") ?? 0
            let digest = KDFDigest(rawValue: profile.profile.quirks.kdfDigest) ?? .md5
            do {
                plaintext = try FileCrypto.decrypt(body, key: cycleKey() ?? "", bits: bits, digest: digest)
            } catch {
                return .failure(
                    DecodeProblem(
                        message: "\(file): cannot decrypt: \(error.message)",
                        reason: "cannot decrypt: \(error.message)",
                        decryption: error.kind.name
                    )
                )
            }
        }
        do {
            let (doc, run, known) = try profile.parsed(plaintext, file: file, kind: kind)
            return .success(Decoded(document: doc, run: run, known: known, plaintext: plaintext, encrypted: encrypted))
        } catch {
            let hint = encrypted ? " (decrypted with the stored key: a wrong key?)" : ""
            return .failure(
                DecodeProblem(message: "\(error)\(hint)", reason: error.reason + hint, line: error.line)
            )
        }
    }

    static func pathEndsInEnc(_ url: String) -> Bool {
        // Byte-wise (every download of a fleet asks): the path, before any query or fragment, ends in ".enc" in
        // any case.
        url.withUTF8Bytes { u in
            let end = u.firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? u.count
            guard end >= 4 else { return false }
            return u[end - 4] == UInt8(ascii: ".") && u[end - 3] | 0x20 == UInt8(ascii: "e")
                && u[end - 2] | 0x20 == UInt8(ascii: "n") && u[end - 1] | 0x20 == UInt8(ascii: "c")
        }
    }

    /// Spec §6: a file that could not be had falls back to its last good saved copy, if there is one.
    private mutating func fileUnavailable(_ kind: FileKind, url: String, reason: String, _ step: inout Step) {
        var outcome = FileOutcome.failed
        if let saved = flash.savedFiles[kind] {
            switch parse(saved.body, file: "saved copy of the \(kind.rawValue) file", kind: kind) {
            case .success(let (doc, run)):
                outcome = .fellBack
                cycle?.inputs.append(MergeInput(kind: kind, document: doc, fresh: false, run: run))
                if kind == .initial { cycle?.initial = doc }
                step.log(
                    .warning,
                    "fallback",
                    "\(kind.rawValue) file: using the saved copy of \(redactURL(saved.url)) from \(saved.savedAt)",
                    ["file": kind.rawValue, "url": redactURL(saved.url), "saved_at": "\(saved.savedAt)"]
                )
            case .failure(let error):
                step.log(.error, "fallback", "the saved copy is unusable: \(error)", ["file": kind.rawValue])
            }
        } else {
            step.log(
                .warning,
                "fallback",
                "\(kind.rawValue) file: no saved copy to fall back on",
                ["file": kind.rawValue]
            )
        }
        cycle?.statuses[kind] = FileStatus(kind: kind, url: url, outcome: outcome, reason: reason, at: step.now)
        if kind == .initial && cycle?.initial == nil {
            // No initial file at all: the saved copies of the device files are the saved configuration.
            cycle?.orphanFallback = true
        }
        next(after: kind, &step)
    }

    /// Standard, then product, then master (spec §3).
    private mutating func next(after kind: FileKind, _ step: inout Step) {
        guard let certificatesDone = cycle?.certificatesDone, let orphanFallback = cycle?.orphanFallback else { return }
        let initial = cycle?.initial
        if kind == .initial && !certificatesDone && initial != nil {
            nextCertificate(after: 0, &step)
            return
        }
        let remaining = FileKind.deviceFiles.drop { k in kind != .initial && k != kind }.filter { $0 != kind }
        for k in remaining {
            if orphanFallback {
                if flash.savedFiles[k] != nil {
                    fileUnavailable(k, url: flash.savedFiles[k]?.url ?? "", reason: "no initial file names it", &step)
                    return
                }
                continue
            }
            let raw = initial?.initial[k.pathParameter ?? ""]?.value ?? ""
            if raw.trimmingWhitespace().isEmpty {
                cycle?.statuses[k] = FileStatus(kind: k, url: "", outcome: .skipped, reason: "", at: step.now)
                step.log(.debug, "skip", "\(k.rawValue) file: no \(k.pathParameter ?? "") in the initial file")
                continue
            }
            fetch(k, raw: raw, &step)
            return
        }
        finishCycle(&step)
    }

    private mutating func useSavedConfiguration(reason: String, _ step: inout Step) {
        step.log(.info, "saved-config", "the saved configuration stays in use: \(reason)")
        cycle?.skipApply = true
        finishCycle(&step)
    }

    private mutating func finishCycle(_ step: inout Step) {
        guard let c = cycle else { return }
        var changes = FlashChanges()
        let statuses = c.statuses
        let used = statuses.values.filter { $0.outcome != .skipped }
        let outcome: CycleOutcome
        // A root certificate that failed counts as a file that fell back: its saved copy (or none) stays in use.
        if c.skipApply || (used.allSatisfy({ $0.outcome == .downloaded }) && c.certificateFailures == 0) {
            outcome = .provisioned
        } else if c.inputs.isEmpty {
            outcome = .unconfigured
        } else {
            outcome = .fellBack
        }
        if !c.skipApply {
            let merged = Merge.effective(
                files: c.inputs,
                localEdits: flash.localEdits,
                overrideFromSavedCopy: profile.profile.quirks.overrideFromSavedCopy,
                recordShadowed: debugEvents,
                memo: profile.merges,
                base: profile.shared?.base
            )
            changes.savedFiles = c.downloads
            changes.fileStatus = FileKind.allCases.compactMap { statuses[$0] }
            if merged.parameters != flash.parameters {
                let settled = c.inputs.allSatisfy { $0.kind == .standard || $0.run?.common == true }
                changes.parameters =
                    profile.shared?.parameters(merged.parameters, settled: settled) ?? merged.parameters
            }
            changes.rootCertificates = c.certificates.keys.sorted().compactMap { c.certificates[$0] }
            changes.removeRootCertificates = c.removedCertificates.sorted()
            if let key = c.newKey {
                // spec §5: a plain standard file installs the key, or replaces it (key rotation).
                let rotated = flash.fileKey != nil
                changes.fileKey = .install(FileKey(key: key, installedAt: step.now, sourceURL: c.newKeyURL))
                step.log(
                    .info,
                    "key",
                    rotated
                        ? "file key replaced (key rotation) by the plain standard file \(c.newKeyURL)"
                        : "file key installed from the plain standard file \(c.newKeyURL)",
                    ["url": c.newKeyURL]
                )
            }
            for p in merged.overriddenLocalEdits {
                changes.removeLocalEdits.append(p.name)
                let by = merged.parameters[p.name]
                step.log(
                    .info,
                    "override",
                    "\(p.name): the local edit gives way to the \(by?.source.rawValue ?? "provisioned") value (perm=\"\(by?.perm ?? "")\")",
                    ["parameter": p.name]
                )
            }
            // spec §4, the decisions a support engineer asks about: which file won where several set a value.
            for (name, losers) in merged.shadowed.sorted(by: { $0.key < $1.key }) {
                guard let winner = merged.parameters[name] else { continue }
                step.log(
                    .debug,
                    "decision",
                    "\(name): the \(winner.source.rawValue) value wins over "
                        + losers.map(\.rawValue).joined(separator: ", "),
                    [
                        "parameter": name, "winner": winner.source.rawValue,
                        "over": losers.map(\.rawValue).joined(separator: ","),
                    ]
                )
            }
            for name in merged.keptLocalEdits {
                step.log(
                    .debug,
                    "local-kept",
                    "\(name): the local edit stays in force over the provisioned value",
                    ["parameter": name]
                )
            }
            let counts = ParameterSource.allCases.reversed().compactMap { s in
                merged.countBySource[s].map { "\(s.rawValue) \($0)" }
            }
            step.log(
                .info,
                "apply",
                changes.parameters == nil
                    ? "configuration unchanged (\(merged.parameters.count) value(s))"
                    : "configuration applied: \(merged.parameters.count) value(s) (\(counts.joined(separator: ", ")))",
                ["state": "applying"]
            )
            step.changes.merge(changes)
            flash.apply(changes)  // the timers below read the new configuration
        }
        // Timers (spec §7), from the configuration now in force.
        // Read from the configuration alone: `value` itself would copy the whole machine into the closure.
        let parameters = flash.parameters
        let factory = profile.factory
        let settings = TimerSettings { parameters.value($0) ?? factory[$0] }
        for p in settings.problems { step.log(.warning, "config", p) }
        let plan = settings.plan(
            now: step.now,
            bootedAt: bootedAt ?? step.now,
            failed: outcome != .provisioned || c.certificateFailures > 0
        )
        for kind in TimerKind.allCases {
            if let at = plan[kind] {
                timers[kind] = at
                step.changes.armTimers[kind] = at
                step.actions.append(.arm(kind, at: at))
                step.log(
                    .info,
                    "timer-armed",
                    "\(kind.rawValue) timer armed for \(at)",
                    ["timer": kind.rawValue, "due": "\(at)"]
                )
            } else if timers[kind] != nil || flash.timers[kind] != nil {
                timers[kind] = nil
                step.changes.cancelTimers.append(kind)
                step.actions.append(.cancel(kind))
            }
        }
        let report = CycleReport(
            trigger: c.trigger,
            startedAt: c.startedAt,
            finishedAt: step.now,
            outcome: outcome,
            files: statuses
        )
        lastReport = report
        let summary = FileKind.allCases.compactMap { k in statuses[k].map { "\(k.rawValue) \($0.outcome.rawValue)" } }
        step.log(
            outcome == .provisioned ? .info : .warning,
            "cycle-done",
            "provisioning cycle done: \(outcome.name)\(summary.isEmpty ? "" : " (\(summary.joined(separator: ", ")))")",
            ["outcome": outcome.name, "state": "idle"]
        )
        step.actions.append(.cycleFinished(report))
        cycle = nil
        phase = .idle
        if let trigger = deferredTrigger {
            deferredTrigger = nil
            startCycle(trigger: trigger, &step)
        }
    }

    // MARK: Values

    /// The effective value in flash (saved configuration, then factory default).
    public func value(_ name: String) -> String? {
        flash.parameters.value(name) ?? profile.factory[name]
    }

    /// The value in force during a cycle: a local edit, else the strongest file downloaded so far in this cycle,
    /// else the saved configuration. A key or credential delivered by the standard file already serves the product
    /// and master files of the same cycle (the guide's worked example).
    func cycleValue(_ parameter: CycleParameter) -> String? {
        let name = parameter.name
        if !flash.localEdits.isEmpty, let e = flash.localEdits[name] { return e.value }
        // The inputs alone (not the whole cycle), read in place: this runs several times for every fetch.
        if let inputs = cycle?.inputs {
            for kind in Self.precedence {
                for index in inputs.indices where inputs[index].kind == kind {
                    if let value = inputs[index].value(parameter) { return value }
                }
            }
        }
        return flash.parameters.value(name) ?? profile.factoryCycleValues[parameter.rawValue]
    }

    /// The files, strongest first (spec §4).
    private static let precedence: [FileKind] = [.standard, .product, .master, .initial]

    /// Parses a saved copy (saved copies are kept decrypted).
    private func parse(
        _ body: [UInt8],
        file: String,
        kind: FileKind
    ) -> Result<(ConfigDocument, MergeRun?), ConfigFormatError> {
        Result { () throws(ConfigFormatError) -> (ConfigDocument, MergeRun?) in
            let parsed = try profile.parsed(body, file: file, kind: kind)
            return (parsed.document, parsed.run)
        }
    }
}

// MARK: - Per-cycle state

private struct Cycle: Sendable {
    var trigger: String
    var startedAt: PhoneTime
    var stage: FileKind = .initial
    var target: FetchTarget = .file(.initial)
    var certificatesDone = false
    var certificates: [Int: RootCertificate] = [:]
    var removedCertificates: Set<Int> = []
    var certificateFailures = 0
    /// A key delivered by this cycle's plain standard file (installed when the cycle applies).
    var newKey: String?
    var newKeyURL = ""
    var candidates: [String] = []
    var candidateIndex = 0
    /// The last User-Agent made: its configured text, the macros it was expanded with, and the result.
    var userAgent: (raw: String, macros: MacroContext, expanded: String)?
    var pendingFetch: Int?
    var initial: ConfigDocument?
    var inputs: [MergeInput] = []
    var downloads: [SavedFile] = []
    var statuses: [FileKind: FileStatus] = [:]
    var orphanFallback = false
    var skipApply = false
}

/// Collects one step's flash changes and actions.
private struct Step {
    var now: PhoneTime
    var boot: Int
    /// Make debug-level events (`PhoneMachine.debugEvents`); the message and fields are not even built otherwise.
    var debug: Bool
    /// Make events at all (`PhoneMachine.makesEvents`).
    var events: Bool
    var changes = FlashChanges()
    var actions: [PhoneAction] = []

    mutating func log(
        _ level: LogEntry.Level,
        _ kind: String,
        _ message: @autoclosure () -> String,
        _ fields: @autoclosure () -> [String: String] = [:]
    ) {
        if !events || (level == .debug && !debug) { return }
        changes.events.append(
            LogEntry(at: now, boot: boot, level: level, kind: kind, message: message(), fields: fields())
        )
    }

    /// `.persist` first, then the rest in order. The machine's flash view takes the same changes (applying is
    /// idempotent, so changes already applied mid-step are harmless).
    func finish(into flash: inout FlashSnapshot) -> [PhoneAction] {
        flash.apply(changes)
        guard !changes.isEmpty else { return actions }
        return [.persist(changes)] + actions
    }
}

extension FetchTarget: CustomStringConvertible {
    /// "standard file", "root certificate 2".
    public var description: String {
        switch self {
        case .file(let k): return "\(k.rawValue) file"
        case .rootCertificate(let slot): return "root certificate \(slot)"
        }
    }

    /// The `file` field of events: `standard`, `certificate2`.
    var fieldValue: String {
        switch self {
        case .file(let k): return k.rawValue
        case .rootCertificate(let slot): return "certificate\(slot)"
        }
    }
}
