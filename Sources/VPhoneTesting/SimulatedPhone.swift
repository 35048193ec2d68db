import Foundation
import PhoneCore

/// What a scripted server answers for one URL.
public enum ScriptedAnswer: Sendable {
    case file(String, status: Int = 200)
    case bytes([UInt8], status: Int = 200)
    case failure(kind: String, status: Int? = nil, message: String)

    public static func notFound() -> ScriptedAnswer {
        .failure(kind: "http_status", status: 404, message: "HTTP 404 Not Found")
    }
    public static func down() -> ScriptedAnswer {
        .failure(kind: "connect", message: "connection refused")
    }
}

/// A phone machine driven synchronously, with a scripted server and virtual time: every rule of the spec becomes a
/// few lines of test, with no socket and no sleeping (STYLE.md rule 4).
public struct SimulatedPhone {
    public var machine: PhoneMachine
    /// Flash as the machine's `.persist` actions have written it.
    public private(set) var flash: FlashSnapshot
    public var now: PhoneTime
    /// URL -> answer. A URL not listed answers like a 404.
    public var server: [String: ScriptedAnswer] = [:]
    /// Every fetch order, in order.
    public private(set) var fetched: [FetchOrder] = []
    /// Every persisted event.
    public private(set) var events: [LogEntry] = []
    public private(set) var reports: [CycleReport] = []
    public private(set) var refusals: [LocalEditRefusal] = []
    /// Downloads the machine rejected (`.rejected`), in order.
    public private(set) var rejections: [(target: FetchTarget, why: FileRejection)] = []
    private var pending: [FetchOrder] = []

    public static let epoch = PhoneTime(millisecondsSinceEpoch: 1_795_000_000_000)  // 2026-11-18

    public init(
        profile: DeviceProfile = TestProfiles.utg300,
        mac: MAC = MAC("0080F0C571EB")!,
        flash: FlashSnapshot? = nil,
        discovery: DiscoveryOptions = DiscoveryOptions(),
        now: PhoneTime = epoch,
        prepared: PreparedProfile? = nil
    ) {
        let snapshot =
            flash
            ?? FlashSnapshot(
                identity: Identity(mac: mac, profile: profile, createdAt: now)
            )
        self.flash = snapshot
        self.now = now
        machine = PhoneMachine(profile: prepared ?? PreparedProfile(profile), flash: snapshot, discovery: discovery)
    }

    /// A new machine on the same flash, as after a power cycle (timers and memory lost, flash kept).
    public mutating func reboot(discovery: DiscoveryOptions? = nil) {
        machine = PhoneMachine(profile: machine.profile, flash: flash, discovery: discovery ?? machine.discovery)
        pending = []
    }

    /// Powers on and answers downloads until the boot cycle is done.
    @discardableResult
    public mutating func powerOn() -> CycleReport? {
        send(.powerOn)
    }

    /// Feeds an event and answers every download it leads to; returns the last cycle report it produced.
    @discardableResult
    public mutating func send(_ event: PhoneEvent) -> CycleReport? {
        let before = reports.count
        perform(machine.handle(event, at: now))
        while !pending.isEmpty {
            let order = pending.removeFirst()
            let answer = server[order.url] ?? .notFound()
            switch answer {
            case .file(let text, let status):
                perform(machine.handle(.fetched(id: order.id, status: status, body: Array(text.utf8)), at: now))
            case .bytes(let b, let status):
                perform(machine.handle(.fetched(id: order.id, status: status, body: b), at: now))
            case .failure(let kind, let status, let message):
                perform(
                    machine.handle(
                        .fetchFailed(id: order.id, FetchError(kind: kind, httpStatus: status, message: message)),
                        at: now
                    )
                )
            }
        }
        return reports.count > before ? reports.last : nil
    }

    /// Moves time to `t`, firing every timer that comes due on the way, in order. Returns the cycles they ran.
    @discardableResult
    public mutating func advance(to t: PhoneTime) -> [CycleReport] {
        let before = reports.count
        while let next = machine.timers.min(by: { $0.value < $1.value }), next.value <= t {
            now = max(now, next.value)
            send(.timerFired(next.key))
        }
        now = max(now, t)
        return Array(reports[before...])
    }

    public mutating func advance(minutes: Int64) -> [CycleReport] { advance(to: now.adding(minutes: minutes)) }

    /// The effective value and source of a parameter, as `vphone config show` would print it.
    public func effective(_ name: String) -> (value: String, source: ParameterSource)? {
        if let p = flash.parameters[name] { return (p.value, p.source) }
        return machine.profile.factory[name].map { ($0, .factory) }
    }

    public func events(kind: String) -> [LogEntry] { events.filter { $0.kind == kind } }

    private mutating func perform(_ actions: [PhoneAction]) {
        for a in actions {
            switch a {
            case .persist(let c):
                flash = flash.applying(c)
                events += c.events
            case .fetch(let order):
                fetched.append(order)
                pending.append(order)
            case .cycleFinished(let r):
                reports.append(r)
            case .refused(let r):
                refusals.append(r)
            case .rejected(let target, let why):
                rejections.append((target, why))
            case .arm, .cancel:
                break
            }
        }
    }
}

/// Profiles for tests, read from the repository's `Profiles/`.
public enum TestProfiles {
    /// The repository root (this file is Sources/VPhoneTesting/SimulatedPhone.swift).
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    public static let utg300Path = repositoryRoot + "/Profiles/KX-UTG300.json"

    public static let utg300: DeviceProfile = {
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: utg300Path))
            return try JSONDecoder().decode(DeviceProfile.self, from: data)
        } catch {
            fatalError("the bundled profile \(utg300Path) does not load: \(error)")
        }
    }()
}

/// Small builders for provisioning files.
public enum Fixture {
    /// A real self-signed root certificate (EC P-256, valid until 2126), for tests that need one without openssl.
    public static let rootCertificatePEM = """
        -----BEGIN CERTIFICATE-----
        MIIBlzCCAT2gAwIBAgIUNgZZgN3E71hgNcj2NyP4/D8aDFkwCgYIKoZIzj0EAwIw
        IDEeMBwGA1UEAwwVdnBob25lIHVuaXQtdGVzdCByb290MCAXDTI2MTEyNzA4MTgx
        MFoYDzIxMjYxMTAzMDgxODEwWjAgMR4wHAYDVQQDDBV2cGhvbmUgdW5pdC10ZXN0
        IHJvb3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQbfc2UAEUE/Q+J/Hm+JDSK
        kI6VOE3XkmOMyr3uh472a8hiOQ6oW6lbS1fn8y1MBnP5Z2eTuTwC8oB1IeULYBkH
        o1MwUTAdBgNVHQ4EFgQUcgXVB20Z6rVBHZ/YALiNPef4VHIwHwYDVR0jBBgwFoAU
        cgXVB20Z6rVBHZ/YALiNPef4VHIwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
        AgNIADBFAiEAp/x7U/Cfzhm4QEU085MtFWSoFzXzDJ3vL/XuLjep/mACIAb73RVS
        QqLOtoo3Szj5FbSWKNkHrw/u454jV3P1l6t0
        -----END CERTIFICATE-----

        """

    /// The guide's own initial file (seed excerpt, section 2.5), verbatim: not well-formed (an unclosed
    /// `</CFG_PRODUCT_FILE_PATH` tag, a doubled `</CfgFiles>`), and its `http:/prov.com` typo.
    public static let seedExample = """
        <PANASIPPhoneConfig>
        <Initial>
        <CfgFiles>
        <CFG_STANDARD_FILE_PATH>http://prov.com/Config{MAC}.cfg</CFG_STANDARD_FILE_PATH>
        <CFG_PRODUCT_FILE_PATH>http:/prov.com/Config{MODEL}.cfg</CFG_PRODUCT_FILE_PATH
        <CFG_MASTER_FILE_PATH>http://prov.com/ConfigCom.cfg</CFG_MASTER_FILE_PATH>
        </CfgFiles>
        </CfgFiles>
        </Initial>
        </PANASIPPhoneConfig>
        """

    /// An initial file naming the three device files (empty string = element present but empty; nil = absent).
    public static func initial(standard: String?, product: String?, master: String?, device: String = "") -> String {
        func el(_ n: String, _ v: String?) -> String { v.map { "<\(n)>\($0)</\(n)>" } ?? "" }
        return """
            <PANASIPPhoneConfig>
            <Initial><CfgFiles>
            \(el("CFG_STANDARD_FILE_PATH", standard))
            \(el("CFG_PRODUCT_FILE_PATH", product))
            \(el("CFG_MASTER_FILE_PATH", master))
            </CfgFiles></Initial>
            \(device.isEmpty ? "" : "<Device>\(device)</Device>")
            </PANASIPPhoneConfig>
            """
    }

    /// A device file with these parameters: `("NAME", "value", perm)`; a name `NAME_n` goes inside `<Line idx="n">`
    /// when `lines` says so.
    public static func device(_ params: [(String, String, String?)]) -> String {
        var body = ""
        for (n, v, perm) in params {
            let attr = perm.map { " perm=\"\($0)\"" } ?? ""
            body += "<\(n)\(attr)>\(v)</\(n)>\n"
        }
        return "<PANASIPPhoneConfig>\n<Device>\n\(body)</Device>\n</PANASIPPhoneConfig>\n"
    }

    public static func device(_ params: [(String, String)]) -> String {
        device(params.map { ($0.0, $0.1, nil) })
    }
}
