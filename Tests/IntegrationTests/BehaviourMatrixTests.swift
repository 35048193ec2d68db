import Flash
import Foundation
import Logging
import PhoneCore
import PhoneRuntime
import Synchronization
import TestServer
import Testing
import Transport
import VPhoneTesting

/// Issue 7: every misbehaviour of `vphone testserver` (a real process: a server on the test process's own busy
/// thread pool would be slowed by the other tests and blur the timeouts), met at every stage of a provisioning cycle,
/// by a phone that was provisioned before. Each must end in the documented outcome: the failure classified, the saved copy in use,
/// the saved configuration unchanged, the retry timer armed, the process alive. The README's table is generated from
/// this run (`VPHONE_UPDATE_README=1 swift test --filter BehaviourMatrix` rewrites it; the test fails while it is
/// stale).
@Suite struct BehaviourMatrixTests {
    static let mac = "0080F0C571EB"

    /// The stages of a cycle, in download order, with the path the matrix tree serves them at.
    enum Stage: String, CaseIterable, Sendable {
        case initial
        case rootCertificate = "root certificate"
        case standard, product, master

        var path: String {
            switch self {
            case .initial: return "/KX-UTG300.cfg"
            case .rootCertificate: return "/root1.pem"
            case .standard: return "/Config\(BehaviourMatrixTests.mac).cfg"
            case .product: return "/ConfigKX-UTG300.cfg"
            case .master: return "/ConfigCom.cfg"
            }
        }

        var target: FetchTarget {
            switch self {
            case .initial: return .file(.initial)
            case .rootCertificate: return .rootCertificate(slot: 1)
            case .standard: return .file(.standard)
            case .product: return .file(.product)
            case .master: return .file(.master)
            }
        }
    }

    /// The class of failure each behaviour must produce (`invalid_file`: downloaded, then refused).
    static func expectedClass(_ behaviour: Misbehaviour, _ stage: Stage) -> String {
        switch behaviour {
        case .status(let code): return "http_status \(code)"
        case .stall, .trickle: return "timeout"
        case .closeMidBody: return "transfer"
        case .overLength, .garbage: return "invalid_file"
        case .endless: return "too_large"
        case .redirectLoop: return "redirect"
        case .redirectToFile: return "protocol_refused"
        case .authForever: return "http_status 401"
        case .wrongMAC, .none, .other: return "none"
        }
    }

    /// What one case observed.
    struct Observation: Sendable {
        var behaviour: Misbehaviour
        var stage: Stage
        /// `timeout`, `http_status 404`, `invalid_file`, or `none` when the download succeeded.
        var failureClass: String
        /// The file's outcome in the cycle report (`fell_back`), or for a root certificate `kept`/`replaced`.
        var fileOutcome: String
        var cycleOutcome: String
        var configurationUnchanged: Bool
        var retryArmed: Bool
        var reason: String
    }

    @Test(.timeLimit(.minutes(3)))
    func everyMisbehaviourAtEveryStageEndsInTheDocumentedOutcome() async throws {
        let cases: [(Misbehaviour, Stage)] = Misbehaviour.catalogue.flatMap { behaviour in
            Stage.allCases.filter { behaviour != .wrongMAC || $0 == .standard }.map { (behaviour, $0) }
        }
        let root = try makeTemporaryDirectory(prefix: "vphone-matrix")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/tree", withIntermediateDirectories: true)
        // No rule until every phone is provisioned; the tree is written once the server's origin is known.
        let server = try await TestServerProcess(tree: root + "/tree", dir: root)
        defer { server.process.signal(SIGKILL) }
        let origin = server.origin
        for index in cases.indices {
            try Self.writeTree(in: root + "/tree/case\(index)", origin: origin + "/case\(index)")
        }

        let transport = try CurlTransport()
        defer { transport.shutdown() }
        // Every phone provisioned once, from a healthy server...
        let phones = try await Self.inParallel(cases.indices.map { $0 }) { index in
            try await MatrixPhone.boot(
                directory: root + "/phone\(index)",
                provURL: origin + "/case\(index)/",
                stage: cases[index].1,
                transport: transport
            )
        }
        // ... then the server breaks: each case's rule on its own paths. The file is read again at the next request.
        try server.setRules(cases.indices.map { "/case\($0)\(cases[$0].1.path)=\(cases[$0].0.syntax)" })
        let observations = try await Self.inParallel(cases.indices.map { $0 }) { index in
            try await phones[index].resync(behaviour: cases[index].0)
        }
        let stopped = server.stop()
        #expect(stopped.code == 0, "\(stopped.stderr)")

        #expect(observations.count == cases.count)
        for o in observations {
            let label = "\(o.behaviour.syntax) at \(o.stage.rawValue): \(o.reason)"
            if o.behaviour == .wrongMAC {
                // The phone cannot tell another phone's valid file from its own, like the real one: it applies it.
                #expect(o.failureClass == "none", "\(label)")
                #expect(o.fileOutcome == FileOutcome.downloaded.rawValue, "\(label)")
                #expect(!o.configurationUnchanged, "\(label)")
                continue
            }
            #expect(o.failureClass == Self.expectedClass(o.behaviour, o.stage), "\(label)")
            #expect(o.fileOutcome == (o.stage == .rootCertificate ? "kept" : "fell_back"), "\(label)")
            #expect(o.cycleOutcome == CycleOutcome.fellBack.name, "\(label)")
            #expect(o.configurationUnchanged, "\(label)")
            #expect(o.retryArmed, "\(label)")
        }
        try Self.checkREADME(table: Self.table(observations))
    }

    /// Runs `body` for every element, sixteen at a time, and returns the results in the elements' order.
    static func inParallel<T: Sendable, R: Sendable>(
        _ elements: [T],
        _ body: @escaping @Sendable (T) async throws -> R
    ) async throws -> [R] {
        try await withThrowingTaskGroup(of: (Int, R).self) { group in
            var results: [R?] = Array(repeating: nil, count: elements.count)
            var next = 0
            func add() {
                let index = next
                let element = elements[index]
                group.addTask { (index, try await body(element)) }
                next += 1
            }
            while next < min(16, elements.count) { add() }
            while let (index, result) = try await group.next() {
                results[index] = result
                if next < elements.count { add() }
            }
            return results.map { $0! }
        }
    }

    /// One phone of the matrix: booted once against the healthy server, then resynced against the broken one.
    final class MatrixPhone: Sendable {
        let runtime: PhoneRuntime
        let image: String
        let stage: Stage
        let records: Records
        let before: Saved

        final class Records: Sendable {
            let lock = Mutex<[FetchRecord]>([])
        }

        private init(runtime: PhoneRuntime, image: String, stage: Stage, records: Records, before: Saved) {
            self.runtime = runtime
            self.image = image
            self.stage = stage
            self.records = records
            self.before = before
        }

        static func boot(
            directory: String,
            provURL: String,
            stage: Stage,
            transport: CurlTransport
        ) async throws
            -> MatrixPhone
        {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            var profile = TestProfiles.utg300
            profile.connectTimeoutMs = 2000
            profile.totalTimeoutMs = 2000
            let clock = ScaledClock()
            let image = directory + "/phone.flash"
            let store = try FlashStore.factoryFresh(
                at: image,
                mac: BehaviourMatrixTests.mac,
                profile: profile,
                now: clock.now()
            )
            let records = Records()
            let runtime = PhoneRuntime(
                machine: PhoneMachine(
                    profile: PreparedProfile(profile),
                    flash: try store.load(),
                    discovery: DiscoveryOptions(provisioningURL: provURL)
                ),
                store: store,
                transport: transport,
                clock: clock,
                logger: Logger(label: "matrix", factory: { _ in SwiftLogNoOpLogHandler() }),
                onFetch: { record in records.lock.withLock { $0.append(record) } }
            )
            let boot = await runtime.powerOn()
            guard boot?.outcome == .provisioned else {
                await runtime.shutdown()
                throw TestFailure("the matrix tree does not provision: \(String(describing: boot))")
            }
            records.lock.withLock { $0.removeAll() }
            let before = try savedConfiguration(image)
            return MatrixPhone(runtime: runtime, image: image, stage: stage, records: records, before: before)
        }

        func resync(behaviour: Misbehaviour) async throws -> Observation {
            let report = await runtime.resync(reason: "matrix")
            let status = await runtime.status()
            let events = (try? await runtime.events()) ?? []
            await runtime.shutdown()
            let after = try savedConfiguration(image)

            let mine = records.lock.withLock { $0 }.filter { $0.order.target == stage.target }
            var failureClass = "none"
            for record in mine {
                if case .failure(let f) = record.result {
                    failureClass = f.kind.rawValue + (f.kind == .httpStatus ? " \(f.httpStatus ?? 0)" : "")
                }
            }
            var fileOutcome: String
            var reason: String
            if let kind = stage.target.fileKind {
                fileOutcome = report?.files[kind]?.outcome.rawValue ?? "missing"
                reason = report?.files[kind]?.reason ?? ""
                if failureClass == "none", fileOutcome != FileOutcome.downloaded.rawValue {
                    failureClass = "invalid_file"
                }
            } else {
                let kept = before.certificates == after.certificates && !after.certificates.isEmpty
                fileOutcome = kept ? "kept" : "replaced"
                reason = events.last { $0.kind == "certificate" && $0.fields["reason"] != nil }?.fields["reason"] ?? ""
                if failureClass == "none", !reason.isEmpty { failureClass = "invalid_file" }
            }
            return Observation(
                behaviour: behaviour,
                stage: stage,
                failureClass: failureClass,
                fileOutcome: fileOutcome,
                cycleOutcome: report?.outcome.name ?? "none",
                configurationUnchanged: before == after,
                retryArmed: status.timers[.retry] != nil,
                reason: reason
            )
        }
    }

    /// What "the saved configuration" means for the comparison: values, saved file bodies, certificates, key.
    struct Saved: Equatable, Sendable {
        var parameters: ParameterTable
        var files: [FileKind: [UInt8]]
        var certificates: [Int: [UInt8]]
        var key: String?
    }

    static func savedConfiguration(_ image: String) throws -> Saved {
        let snapshot = try FlashStore.open(at: image, readOnly: true).load()
        return Saved(
            parameters: snapshot.parameters,
            files: snapshot.savedFiles.mapValues(\.body),
            certificates: snapshot.rootCertificates.mapValues(\.pem),
            key: snapshot.fileKey.map { "\($0)" }
        )
    }

    /// An initial file naming three device files and a root certificate, all on `origin`; another phone's standard
    /// file beside this phone's (for `wrong-mac`); a master file long enough that half of it is not XML.
    static func writeTree(in dir: String, origin: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let files: [String: String] = [
            "KX-UTG300.cfg": """
            <PANASIPPhoneConfig>
            <Initial>
            <CfgFiles>
            <CFG_STANDARD_FILE_PATH>\(origin)/Config{MAC}.cfg</CFG_STANDARD_FILE_PATH>
            <CFG_PRODUCT_FILE_PATH>\(origin)/Config{MODEL}.cfg</CFG_PRODUCT_FILE_PATH>
            <CFG_MASTER_FILE_PATH>\(origin)/ConfigCom.cfg</CFG_MASTER_FILE_PATH>
            </CfgFiles>
            <Certs>
            <CFG_ROOT_CERTIFICATE_PATH1>\(origin)/root1.pem</CFG_ROOT_CERTIFICATE_PATH1>
            </Certs>
            </Initial>
            </PANASIPPhoneConfig>

            """,
            "Config\(mac).cfg": Fixture.device([
                ("PHONE_NUMBER_1", "201"), ("DISPLAY_NAME_1", "Front desk"), ("SIP_AUTHID_1", "201"),
                ("SIP_PASS_1", "s3cret-201"),
            ]),
            "Config0080F0000002.cfg": Fixture.device([
                ("PHONE_NUMBER_1", "999"), ("DISPLAY_NAME_1", "Someone else"), ("SIP_AUTHID_1", "999"),
                ("SIP_PASS_1", "not-yours"),
            ]),
            "ConfigKX-UTG300.cfg": Fixture.device([
                ("SIP_RGSTR_ADDR_1", "pbx.example.net"), ("SIP_PRXY_ADDR_1", "pbx.example.net"),
                ("REG_EXPIRE_TIME_1", "600"),
            ]),
            "ConfigCom.cfg": Fixture.device(
                [("CFG_RTRY_INTVL", "30"), ("NTP_ADDR", "pool.ntp.org"), ("TIME_ZONE", "60")]
                    + (2...6).map { ("PHONE_NUMBER_\($0)", "20\($0)") }
            ),
            "root1.pem": Fixture.rootCertificatePEM,
        ]
        for (name, text) in files {
            try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
        }
    }

    // MARK: - The README's table

    static let begin = "<!-- behaviour-table: generated by BehaviourMatrixTests; do not edit by hand -->"
    static let end = "<!-- /behaviour-table -->"

    static func table(_ observations: [Observation]) -> String {
        var lines = [
            "| server behaviour (`--rule`) | " + Stage.allCases.map(\.rawValue).joined(separator: " | ") + " |",
            "|---|" + Stage.allCases.map { _ in "---|" }.joined(),
        ]
        for behaviour in Misbehaviour.catalogue {
            var row = "| `\(behaviour.syntax)`: \(behaviour.summary) |"
            for stage in Stage.allCases {
                guard let o = observations.first(where: { $0.behaviour == behaviour && $0.stage == stage }) else {
                    row += " — |"
                    continue
                }
                row += " " + cell(o) + " |"
            }
            lines.append(row)
        }
        return lines.joined(separator: "\n")
    }

    /// `timeout` ✓ when every promise held (saved copy or certificate in use, flash unchanged, retry armed, the
    /// cycle fell back); the broken promises spelled out otherwise.
    static func cell(_ o: Observation) -> String {
        if o.behaviour == .wrongMAC { return "applied (a valid file: the phone cannot tell)" }
        var broken: [String] = []
        if o.fileOutcome != (o.stage == .rootCertificate ? "kept" : "fell_back") { broken.append(o.fileOutcome) }
        if !o.configurationUnchanged { broken.append("flash changed") }
        if !o.retryArmed { broken.append("no retry") }
        if o.cycleOutcome != CycleOutcome.fellBack.name { broken.append(o.cycleOutcome) }
        return "`\(o.failureClass)` " + (broken.isEmpty ? "✓" : "✗ " + broken.joined(separator: ", "))
    }

    static func checkREADME(table: String) throws {
        let path = TestProfiles.repositoryRoot + "/README.md"
        let readme = try String(contentsOfFile: path, encoding: .utf8)
        guard let start = readme.range(of: begin), let stop = readme.range(of: end), start.upperBound < stop.lowerBound
        else {
            Issue.record("README.md has no behaviour table between \(begin) and \(end)")
            return
        }
        let current = readme[start.upperBound..<stop.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
        if current == table { return }
        if ProcessInfo.processInfo.environment["VPHONE_UPDATE_README"] == "1" {
            let updated = readme.replacingCharacters(in: start.upperBound..<stop.lowerBound, with: "\n" + table + "\n")
            try updated.write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        let fix = "regenerate it with VPHONE_UPDATE_README=1 swift test --filter BehaviourMatrix"
        Issue.record("README.md's behaviour table is not what this run observed; \(fix)\n\(table)")
    }
}

extension FetchTarget {
    fileprivate var fileKind: FileKind? {
        if case .file(let kind) = self { return kind }
        return nil
    }
}
