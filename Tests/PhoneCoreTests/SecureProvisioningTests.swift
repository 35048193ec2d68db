import Crypto
import PhoneCore
import Testing
import VPhoneTesting

/// Spec §5: encrypted files and the key lifecycle, HTTPS roots from <Certs>, authentication and proxy settings.
@Suite("Secure provisioning (spec §5)")
struct SecureProvisioningTests {
    static let key1 = "12341234abcdabcd12341234abcdabcd"
    static let key2 = "K2K2K2K2K2K2K2K2K2K2K2K2K2K2K2K2"

    static func enc(_ text: String, key: String = key1, bits: Int = 128, digest: KDFDigest = .md5) -> ScriptedAnswer {
        do {
            return .bytes(try FileCrypto.encrypt(Array(text.utf8), key: key, bits: bits, digest: digest))
        } catch {
            return .failure(kind: "other", message: "fixture encryption failed: \(error)")
        }
    }

    /// A phone whose initial file names `.enc` device files, the standard one first served plain with the key.
    func keyedPhone() -> SimulatedPhone {
        var phone = SimulatedPhone(discovery: DiscoveryOptions(provisioningURL: base))
        phone.server = [
            initialURL: .file(
                Fixture.initial(
                    standard: "\(base)/Config{MAC}.cfg",
                    product: "\(base)/Config{MODEL}.cfg.enc",
                    master: "\(base)/ConfigCom.cfg.enc"
                )
            ),
            std: .file(Fixture.device([("CFG_FILE_KEY", Self.key1), ("SIP_AUTHID_1", "std")])),
            "\(prod).enc": Self.enc(Fixture.device([("SIP_RGSTR_ADDR_1", "prod.enc")])),
            "\(mast).enc": Self.enc(Fixture.device([("NTP_ADDR", "master.enc")])),
        ]
        return phone
    }

    @Test func keyFromThePlainStandardFileDecryptsTheSameCycle() throws {
        var phone = keyedPhone()
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(report.outcome == .provisioned, "\(phone.events.map(\.message))")
        #expect(phone.effective("SIP_RGSTR_ADDR_1")! == ("prod.enc", .product))
        #expect(phone.effective("NTP_ADDR")! == ("master.enc", .master))
        #expect(phone.flash.fileKey?.key == Self.key1)
        #expect(phone.events(kind: "key").count == 1)
        // saved copies are kept decrypted, so they stand in after a key rotation
        #expect(
            phone.flash.savedFiles[.product].map { String(decoding: $0.body, as: UTF8.self) }?.contains("prod.enc")
                == true
        )
    }

    @Test func laterEncryptedStandardFileUsesTheStoredKeyAcrossReboots() throws {
        var phone = keyedPhone()
        phone.powerOn()
        phone.server[std] = .notFound()
        phone.server[initialURL] = .file(
            Fixture.initial(
                standard: "\(base)/Config{MAC}.cfg.enc",
                product: "\(base)/Config{MODEL}.cfg.enc",
                master: ""
            )
        )
        phone.server["\(std).enc"] = Self.enc(Fixture.device([("SIP_AUTHID_1", "std.enc")]))
        phone.reboot()
        let reportMaybe = phone.powerOn()
        #expect(reportMaybe?.outcome == .provisioned)
        #expect(phone.effective("SIP_AUTHID_1")! == ("std.enc", .standard))
        #expect(phone.flash.fileKey?.key == Self.key1)  // kept though the standard file no longer carries it
    }

    @Test func keyRotation() throws {
        var phone = keyedPhone()
        phone.powerOn()
        phone.server[std] = .file(Fixture.device([("CFG_FILE_KEY", Self.key2)]))
        phone.server["\(prod).enc"] = Self.enc(Fixture.device([("SIP_RGSTR_ADDR_1", "rotated")]), key: Self.key2)
        phone.server["\(mast).enc"] = Self.enc(Fixture.device([("NTP_ADDR", "rotated")]), key: Self.key2)
        phone.reboot()
        let reportMaybe = phone.powerOn()
        #expect(reportMaybe?.outcome == .provisioned)
        #expect(phone.flash.fileKey?.key == Self.key2)
        #expect(phone.effective("NTP_ADDR")! == ("rotated", .master))
        #expect(phone.events(kind: "key").last?.message.contains("rotation") == true)
    }

    @Test func sha256KeyDerivationIsRejectedWithADiagnosis() throws {
        var phone = keyedPhone()
        phone.server["\(mast).enc"] = Self.enc(Fixture.device([("NTP_ADDR", "x")]), digest: .sha256)
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(report.outcome == .fellBack)
        #expect(report.files[.master]?.outcome == .failed)
        let invalid = try #require(phone.events(kind: "invalid-file").first)
        #expect(invalid.message.contains("-md md5"))
        #expect(invalid.message.contains("SHA-256"))
        #expect(phone.effective("NTP_ADDR")! == ("", .factory))
    }

    @Test func sha256QuirkAcceptsModernOpenSSLFiles() throws {
        var profile = TestProfiles.utg300
        profile.quirks.kdfDigest = "sha256"
        var phone = SimulatedPhone(profile: profile, discovery: DiscoveryOptions(provisioningURL: base))
        phone.server = keyedPhone().server
        phone.server["\(prod).enc"] = Self.enc(Fixture.device([("SIP_RGSTR_ADDR_1", "p")]), digest: .sha256)
        phone.server["\(mast).enc"] = Self.enc(Fixture.device([("NTP_ADDR", "m")]), digest: .sha256)
        let reportMaybe = phone.powerOn()
        #expect(reportMaybe?.outcome == .provisioned)
    }

    @Test func wrongKeyAndNoKeyAreInvalidFilesAndNothingIsApplied() throws {
        var phone = keyedPhone()
        phone.server["\(prod).enc"] = Self.enc(Fixture.device([("SIP_RGSTR_ADDR_1", "x")]), key: Self.key2)
        phone.server[std] = .file(Fixture.device([("SIP_AUTHID_1", "no key here")]))
        let reportMaybe = phone.powerOn()
        let report = try #require(reportMaybe)
        #expect(report.files[.product]?.outcome == .failed)
        #expect(report.files[.master]?.outcome == .failed)
        let reasons = phone.events(kind: "invalid-file").map(\.message)
        #expect(reasons.allSatisfy { $0.contains("no key") || $0.contains("CFG_FILE_KEY") }, "\(reasons)")
        #expect(phone.flash.fileKey == nil)
        #expect(phone.effective("SIP_RGSTR_ADDR_1")! == ("", .factory))
    }

    @Test func wrongKeyAfterTheKeyIsSet() throws {
        var phone = keyedPhone()
        phone.powerOn()
        phone.server["\(prod).enc"] = Self.enc(Fixture.device([("SIP_RGSTR_ADDR_1", "x")]), key: Self.key2)
        phone.reboot()
        let reportMaybe = phone.powerOn()
        #expect(reportMaybe?.files[.product]?.outcome == .fellBack)
        #expect(phone.events(kind: "invalid-file").last?.fields["decryption"] != nil)
        #expect(phone.rejections.map(\.target) == [.file(.product)])
        #expect(phone.rejections.map(\.why) == [.decryption])
        #expect(phone.effective("SIP_RGSTR_ADDR_1")! == ("prod.enc", .product))
    }

    @Test func keyExposedInClear() throws {
        var phone = keyedPhone()
        phone.powerOn()
        #expect(phone.events(kind: "key-exposed").isEmpty)
        phone.server[mast] = .file(Fixture.device([("NTP_ADDR", "plain")]))
        phone.server[initialURL] = .file(
            Fixture.initial(standard: "\(base)/Config{MAC}.cfg", product: "", master: "\(base)/ConfigCom.cfg")
        )
        phone.reboot()
        phone.powerOn()
        let warnings = phone.events(kind: "key-exposed").map(\.message)
        #expect(warnings.count == 2)  // the plain standard file again, and a plain master file
        #expect(warnings.allSatisfy { $0.hasPrefix("key exposed in clear") })
    }

    @Test func theKeyNeverReachesTheEventLog() {
        var phone = keyedPhone()
        phone.powerOn()
        phone.server[std] = .file(Fixture.device([("CFG_FILE_KEY", Self.key2)]))
        phone.reboot()
        phone.powerOn()
        for e in phone.events {
            #expect(!e.message.contains(Self.key1) && !e.message.contains(Self.key2))
            #expect(!e.fields.values.contains { $0.contains(Self.key1) || $0.contains(Self.key2) })
        }
    }

    @Test func rootCertificatesFromCertsAreTrustedForLaterDownloads() throws {
        let pem = Fixture.rootCertificatePEM
        var phone = SimulatedPhone(discovery: DiscoveryOptions(provisioningURL: base))
        phone.server = threeFilePhone().server
        phone.server[initialURL] = .file(
            """
            <PANASIPPhoneConfig><Initial>
            <CfgFiles><CFG_STANDARD_FILE_PATH>\(std)</CFG_STANDARD_FILE_PATH></CfgFiles>
            <Certs><CFG_ROOT_CERTIFICATE_PATH1>\(base)/ca1.pem</CFG_ROOT_CERTIFICATE_PATH1>
            <CFG_ROOT_CERTIFICATE_PATH2>\(base)/ca2.pem</CFG_ROOT_CERTIFICATE_PATH2></Certs>
            </Initial></PANASIPPhoneConfig>
            """
        )
        phone.server["\(base)/ca1.pem"] = .file(pem)
        phone.server["\(base)/ca2.pem"] = .file("<html>not a certificate</html>")
        let reportMaybe = phone.powerOn()
        // A certificate that failed counts as a file that fell back (exit code 10), the files themselves downloaded.
        #expect(reportMaybe?.outcome == .fellBack)
        #expect(reportMaybe?.files[.standard]?.outcome == .downloaded)
        #expect(
            phone.fetched.map(\.target) == [
                .file(.initial), .rootCertificate(slot: 1), .rootCertificate(slot: 2), .file(.standard),
            ]
        )
        #expect(phone.fetched.last?.extraCAPEM == Array(pem.utf8))
        #expect(phone.flash.rootCertificates.keys.sorted() == [1])
        #expect(phone.events(kind: "certificate").contains { $0.message.contains("not a PEM certificate") })
        #expect(phone.rejections.map(\.target) == [.rootCertificate(slot: 2)])
        #expect(phone.rejections.map(\.why) == [.invalidFile])
        // a failed certificate download arms the retry timer
        #expect(phone.machine.timers[.retry] != nil)
    }

    @Test func credentialsAndProxyComeFromTheConfiguration() throws {
        var flash = SimulatedPhone().flash
        for (n, v) in [
            ("USR_PROV_SVR_AUTH_ID", "init-id"), ("USR_PROV_SVR_AUTH_PASSWORD", "init-pw"),
            ("HTTP_AUTH_ID", "dev-id"), ("HTTP_AUTH_PASSWORD", "dev-pw"), ("HTTP_ENABLE_PROXY", "Y"),
            ("HTTP_PROXY_SVR_ADDR", "proxy.lab"),
        ] {
            flash.parameters[n] = Parameter(name: n, value: v, source: .local)
            flash.localEdits[n] = LocalEdit(name: n, value: v, editedAt: SimulatedPhone.epoch)
        }
        var phone = SimulatedPhone(flash: flash, discovery: DiscoveryOptions(provisioningURL: base))
        phone.server = threeFilePhone().server
        phone.powerOn()
        #expect(phone.fetched.first?.username == "init-id")
        #expect(phone.fetched.first?.password == "init-pw")
        #expect(phone.fetched.dropFirst().allSatisfy { $0.username == "dev-id" && $0.password == "dev-pw" })
        #expect(phone.fetched.allSatisfy { $0.proxy == "proxy.lab:8080" })
    }
}
