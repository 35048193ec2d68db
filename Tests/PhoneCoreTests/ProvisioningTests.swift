import PhoneCore
import Testing
import VPhoneTesting

let base = "http://prov.test"
let std = "\(base)/Config0080F0C571EB.cfg"
let prod = "\(base)/ConfigKX-UTG300.cfg"
let mast = "\(base)/ConfigCom.cfg"
let initialURL = "\(base)/KX-UTG300.cfg"

/// A phone pointed at `base` by hand, with the three files of the seed's example (its standard file at
/// `Config{MAC}.cfg` for its own MAC; `prepared`: a profile the phone shares with a fleet).
func threeFilePhone(
    standard: String = Fixture.device([("SIP_AUTHID_1", "std")]),
    product: String = Fixture.device([("SIP_AUTHID_1", "prod"), ("SIP_RGSTR_ADDR_1", "prod.example")]),
    master: String = Fixture.device([
        ("SIP_AUTHID_1", "master"), ("SIP_RGSTR_ADDR_1", "master.example"), ("NTP_ADDR", "ntp.master"),
    ]),
    mac: MAC = MAC("0080F0C571EB")!,
    prepared: PreparedProfile? = nil
) -> SimulatedPhone {
    var phone = SimulatedPhone(mac: mac, discovery: DiscoveryOptions(provisioningURL: base), prepared: prepared)
    phone.server = [
        initialURL: .file(
            Fixture.initial(
                standard: "\(base)/Config{MAC}.cfg",
                product: "\(base)/Config{MODEL}.cfg",
                master: "\(base)/ConfigCom.cfg",
                device: "<NTP_ADDR>ntp.initial</NTP_ADDR><SYSLOG_ADDR>syslog.initial</SYSLOG_ADDR>"
            )
        ),
        "\(base)/Config\(mac.upper).cfg": .file(standard), prod: .file(product), mast: .file(master),
    ]
    return phone
}

@Suite("Boot and provisioning (spec §3, §4, §6)")
struct ProvisioningTests {
    @Test func downloadsInitialThenStandardProductMasterInOrder() throws {
        var phone = threeFilePhone()
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(phone.fetched.map(\.url) == [initialURL, std, prod, mast])
        #expect(phone.fetched.map(\.file) == [.initial, .standard, .product, .master])
        #expect(report.outcome == .provisioned)
        #expect(report.files.values.allSatisfy { $0.outcome == .downloaded })
    }

    @Test func laterFilesNeverOverrideEarlierOnes() throws {
        var phone = threeFilePhone()
        phone.powerOn()
        #expect(phone.effective("SIP_AUTHID_1")! == ("std", .standard))
        #expect(phone.effective("SIP_RGSTR_ADDR_1")! == ("prod.example", .product))
        // master beats the initial file's own <Device> section (spec §4 decision)
        #expect(phone.effective("NTP_ADDR")! == ("ntp.master", .master))
        #expect(phone.effective("SYSLOG_ADDR")! == ("syslog.initial", .initial))
        #expect(phone.effective("CFG_STANDARD_FILE_PATH")! == ("\(base)/Config{MAC}.cfg", .initial))
        #expect(phone.effective("SIP_RGSTR_PORT_1")! == ("5060", .factory))
    }

    @Test func exactUserAgentFromTheProfile() {
        var phone = threeFilePhone()
        phone.powerOn()
        #expect(phone.fetched.allSatisfy { $0.userAgent == "Panasonic_KX-UTG300/03.210 (0080f0c571eb)" })
    }

    @Test func provisionedUserAgentIsUsedFromTheNextFile() {
        var phone = threeFilePhone(standard: Fixture.device([("HTTP_USER_AGENT", "Custom/{MODEL}")]))
        phone.powerOn()
        #expect(phone.fetched.map(\.userAgent).suffix(2) == ["Custom/KX-UTG300", "Custom/KX-UTG300"])
    }

    @Test func everyTransitionIsLogged() {
        var phone = threeFilePhone()
        phone.powerOn()
        let kinds = phone.events.map(\.kind)
        for k in ["power-on", "state", "cycle-start", "discover", "fetch", "fetched", "apply", "cycle-done"] {
            #expect(kinds.contains(k), "missing event \(k)")
        }
        #expect(phone.events.allSatisfy { $0.boot == 1 && $0.at == SimulatedPhone.epoch })
        #expect(phone.flash.bootCount == 1)
    }

    @Test func emptyPathIsSkippedAndItsSavedCopyNotUsed() throws {
        var phone = threeFilePhone()
        phone.powerOn()
        phone.server[initialURL] = .file(
            Fixture.initial(standard: "\(base)/Config{MAC}.cfg", product: "", master: "\(base)/ConfigCom.cfg")
        )
        phone.reboot()
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(report.outcome == .provisioned)
        #expect(report.files[.product]?.outcome == .skipped)
        #expect(phone.effective("SIP_RGSTR_ADDR_1")! == ("master.example", .master))
    }

    @Test func missingProductFileFallsBackToItsSavedCopy() throws {
        var phone = threeFilePhone()
        phone.powerOn()
        phone.server[prod] = .notFound()
        phone.server[std] = .file(Fixture.device([("SIP_AUTHID_1", "std2")]))
        phone.reboot()
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(report.outcome == .fellBack)
        #expect(report.files[.product]?.outcome == .fellBack)
        #expect(report.files[.product]?.reason == "HTTP 404 Not Found")
        #expect(phone.effective("SIP_AUTHID_1")! == ("std2", .standard))
        #expect(phone.effective("SIP_RGSTR_ADDR_1")! == ("prod.example", .product))
        #expect(phone.events(kind: "fallback").count == 1)
        // The saved copy is still the old good one, and the retry timer is armed.
        #expect(
            phone.flash.savedFiles[.product]?.body
                == Array(
                    Fixture.device([("SIP_AUTHID_1", "prod"), ("SIP_RGSTR_ADDR_1", "prod.example")]).utf8
                )
        )
        #expect(phone.machine.timers[.retry] == phone.now.adding(minutes: 30))
    }

    @Test func failedFileWithoutSavedCopyContributesNothing() throws {
        var phone = threeFilePhone()
        phone.server[prod] = .notFound()
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(report.outcome == .fellBack)
        #expect(report.files[.product]?.outcome == .failed)
        #expect(phone.effective("SIP_RGSTR_ADDR_1")! == ("master.example", .master))
    }

    @Test func serverDownKeepsTheSavedConfigurationUnchanged() throws {
        var phone = threeFilePhone()
        phone.powerOn()
        let saved = phone.flash
        for url in [initialURL, std, prod, mast] { phone.server[url] = .down() }
        phone.reboot()
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(report.outcome == .fellBack)
        #expect(report.files.values.allSatisfy { $0.outcome == .fellBack })
        #expect(phone.flash.parameters == saved.parameters)
        #expect(phone.flash.savedFiles == saved.savedFiles)
        // initial fell back, and its saved copy still named the device files, which were tried
        #expect(phone.fetched.suffix(4).map(\.url) == [initialURL, std, prod, mast])
    }

    @Test func nothingSavedAndServerDownIsUnconfigured() throws {
        var phone = threeFilePhone()
        phone.server[initialURL] = .down()
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(report.outcome == .unconfigured)
        #expect(phone.flash.parameters.isEmpty)
        #expect(phone.effective("CFG_CYCLIC")! == ("N", .factory))
        #expect(phone.machine.timers == [.retry: phone.now.adding(minutes: 30)])
    }

    @Test func noProvisioningServerAtAll() throws {
        var phone = SimulatedPhone()
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(report.outcome == .unconfigured)
        #expect(phone.fetched.isEmpty)
        #expect(phone.events(kind: "discover").contains { $0.message.contains("no provisioning server") })
    }

    @Test func malformedInitialFileIsRejectedWholeWithLineAndReason() throws {
        var phone = threeFilePhone()
        phone.server[initialURL] = .file(Fixture.seedExample)
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(report.outcome == .unconfigured)
        #expect(report.files[.initial]?.outcome == .failed)
        let invalid = try #require(phone.events(kind: "invalid-file").first)
        #expect(invalid.message.contains("initial file \(initialURL)"))
        #expect(Int(invalid.fields["line"] ?? "") != nil)
        #expect(phone.fetched.map(\.url) == [initialURL])  // nothing half-applied, nothing else fetched
        #expect(phone.flash.parameters.isEmpty)
        #expect(phone.flash.savedFiles.isEmpty)
        // Delivered whole but rejected: the fleet counts it as a failed request of this class.
        #expect(phone.rejections.map(\.target) == [.file(.initial)])
        #expect(phone.rejections.map(\.why) == [.invalidFile])
    }

    @Test func malformedInitialFileFallsBackToTheSavedOne() throws {
        var phone = threeFilePhone()
        phone.powerOn()
        phone.server[initialURL] = .file(Fixture.seedExample)
        phone.reboot()
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(report.files[.initial]?.outcome == .fellBack)
        #expect(report.files[.standard]?.outcome == .downloaded)
        #expect(phone.effective("SIP_AUTHID_1")! == ("std", .standard))
        #expect(phone.rejections.map(\.target) == [.file(.initial)], "the first boot's good files are not rejected")
    }

    @Test func deviceFileAloneAtTheProvisioningURL() throws {
        var phone = SimulatedPhone(discovery: DiscoveryOptions(provisioningURL: "\(base)/{MAC}.xml"))
        phone.server["\(base)/0080F0C571EB.xml"] = .file(Fixture.device([("SIP_AUTHID_1", "fusion")]))
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(report.outcome == .provisioned)
        #expect(phone.fetched.count == 1)
        #expect(phone.effective("SIP_AUTHID_1")! == ("fusion", .initial))
        #expect(report.files[.standard]?.outcome == .skipped)
    }

    @Test func schemelessURLFallsThroughTheSchemes() throws {
        var phone = SimulatedPhone(discovery: DiscoveryOptions(option66: "prov.test"))
        phone.server["tftp://prov.test/KX-UTG300.cfg"] = .failure(kind: "timeout", message: "TFTP timed out")
        phone.server["http://prov.test/KX-UTG300.cfg"] = .file(Fixture.device([("NTP_ADDR", "x")]))
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(phone.fetched.map(\.url) == ["tftp://prov.test/KX-UTG300.cfg", "http://prov.test/KX-UTG300.cfg"])
        #expect(report.outcome == .provisioned)
    }

    @Test func aBootAtTheLargestBootCountStaysThereRatherThanOverflow() throws {
        var flash = SimulatedPhone().flash
        flash.bootCount = FlashSnapshot.maxBootCount
        var phone = SimulatedPhone(flash: flash, discovery: DiscoveryOptions(provisioningURL: base))
        phone.powerOn()
        #expect(phone.flash.bootCount == FlashSnapshot.maxBootCount)
        flash.bootCount = Int.max  // no loader gives this, and the machine must not trap on it either
        phone = SimulatedPhone(flash: flash, discovery: DiscoveryOptions(provisioningURL: base))
        phone.powerOn()
        #expect(phone.flash.bootCount == FlashSnapshot.maxBootCount)
    }

    @Test func provisionDisabled() throws {
        var flash = SimulatedPhone().flash
        flash.parameters["PROVISION_ENABLE"] = Parameter(name: "PROVISION_ENABLE", value: "N", source: .local)
        var phone = SimulatedPhone(flash: flash, discovery: DiscoveryOptions(provisioningURL: base))
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(phone.fetched.isEmpty)
        #expect(report.outcome == .provisioned)
    }

    @Test func textFileRefusedByAnXMLOnlyModel() throws {
        var phone = SimulatedPhone(discovery: DiscoveryOptions(provisioningURL: base))
        phone.server[initialURL] = .file("# Panasonic SIP Phone Standard Format File #\r\nNTP_ADDR=\"x\"\r\n")
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(report.outcome == .unconfigured)
        #expect(phone.events(kind: "invalid-file").count == 1)
    }

    @Test func textFileAcceptedByASiblingModel() throws {
        var profile = TestProfiles.utg300
        profile.model = "KX-UT136"
        profile.formats = [.text]
        var phone = SimulatedPhone(profile: profile, discovery: DiscoveryOptions(provisioningURL: base))
        phone.server["\(base)/KX-UT136.cfg"] = .file(
            "# Panasonic SIP Phone Standard Format File #\r\nNTP_ADDR=\"first\"\r\nNTP_ADDR=\"second\"\r\n\r\n"
        )
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(report.outcome == .provisioned)
        #expect(phone.effective("NTP_ADDR")! == ("first", .initial))  // text: the first duplicate wins
    }
}

@Suite("Discovery of the initial file (spec §3)")
struct DiscoveryTests {
    func firstURL(_ d: DiscoveryOptions, flash edits: [String: String] = [:]) -> String? {
        var flash = SimulatedPhone().flash
        for (n, v) in edits { flash.parameters[n] = Parameter(name: n, value: v, source: .local) }
        var phone = SimulatedPhone(flash: flash, discovery: d)
        phone.powerOn()
        return phone.fetched.first?.url
    }

    @Test func order() {
        let all = DiscoveryOptions(
            provisioningURL: "http://cli/",
            sipPnPURL: "http://pnp/",
            option160: "http://o160/",
            option159: "http://o159/",
            option66: "http://o66/"
        )
        #expect(firstURL(all) == "http://cli/KX-UTG300.cfg")
        var d = all
        d.provisioningURL = nil
        #expect(firstURL(d, flash: ["USR_PROV_SVR_URL": "http://hand/"]) == "http://hand/KX-UTG300.cfg")
        #expect(firstURL(d) == "http://pnp/KX-UTG300.cfg")
        #expect(firstURL(d, flash: ["SIPPNP_ENABLE": "N"]) == "http://o160/KX-UTG300.cfg")
        #expect(firstURL(d, flash: ["SIPPNP_ENABLE": "N", "OPTION160_ENABLE": "N"]) == "http://o159/KX-UTG300.cfg")
        #expect(
            firstURL(d, flash: ["SIPPNP_ENABLE": "N", "OPTION160_ENABLE": "N", "OPTION159_ENABLE": "N"])
                == "http://o66/KX-UTG300.cfg"
        )
        #expect(
            firstURL(
                d,
                flash: ["SIPPNP_ENABLE": "N", "OPTION160_ENABLE": "N", "OPTION159_ENABLE": "N", "OPTION66_ENABLE": "N"]
            )
                == nil
        )
        #expect(firstURL(DiscoveryOptions(option159: "http://o159/")) == "http://o159/KX-UTG300.cfg")
    }
}
